"""Live mode on a running web UI: the WebSocket endpoint (edtalk/live/server.py) and the WebRTC
page with its signalling route (edtalk/live/webrtc.py), sharing one generator."""

from fastapi import FastAPI

from ..options import PipelineOptions
from .server import LiveService, add_live_route
from .webrtc import add_webrtc_routes


def mount_live(app: FastAPI, ckpt_dir, device: str = "auto") -> None:
    """Serve /live/ws, /live/ and /live/offer on a running web UI's app (`demo.app` after
    `demo.launch(prevent_thread_lock=True)`); the networks load on the first connection."""
    service = LiveService(PipelineOptions(ckpt_dir=ckpt_dir, device=device))
    add_live_route(app, service)
    add_webrtc_routes(app, service)
