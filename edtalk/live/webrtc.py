"""The live page: the browser's microphone in, the talking head with its voice out, over WebRTC (aiortc).

Served on the web UI's app (mount_live in edtalk/live/server.py adds these routes):

  GET  /live/         the page (edtalk/live/page/: start/stop, the video, frame rate and latency)
  POST /live/offer    signalling: {"sdp", "type": "offer", "source": base64 photo, and LiveOptions
                      fields such as "latency"} -> the answer {"sdp", "type": "answer"}, or
                      {"error": "..."} with status 400

The offer carries the microphone's audio track and a data channel; the answer adds the talking
head's video track and the microphone's audio sent back in step with it (edtalk/live/relay.py),
and the server sends its figures on the data channel once a second. Host candidates only (no
STUN/TURN): the page and the server on one machine or one local network.
"""

import asyncio
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from ..errors import EDTalkError
from .relay import LiveRelay
from .server import LiveService, to_front

PAGE_DIR = Path(__file__).parent / "page"
PAGE_ROUTE = "/live/"
OFFER_ROUTE = "/live/offer"
PAGE_FILES = {"": "index.html", "live.js": "live.js"}


def _offer(body) -> RTCSessionDescription:
    """The checked offer of a signalling request's JSON body."""
    if not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        raise EDTalkError("the request must be a JSON object with 'sdp' and 'type': 'offer'")
    if "m=audio" not in body["sdp"]:
        raise EDTalkError("the offer carries no audio track (allow the microphone)")
    return RTCSessionDescription(body["sdp"], "offer")


class WebRTCService:
    """The open peer connections, each with its relay; `answer` adds one."""

    def __init__(self, service: LiveService):
        self.service = service
        self.peers: set[RTCPeerConnection] = set()
        self.tasks: set[asyncio.Task] = set()

    def _run(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def answer(self, body) -> dict:
        """The answer to an offer (EDTalkError for a bad request); starts the relay."""
        offer = _offer(body)
        session = await asyncio.to_thread(self.service.session, body)
        relay, pc = LiveRelay(session), RTCPeerConnection()
        self.peers.add(pc)

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind == "audio":
                self._run(relay.consume(track))

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            self._run(relay.report(channel))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(pc)

        await pc.setRemoteDescription(offer)
        pc.addTrack(relay.video)
        pc.addTrack(relay.audio)
        await pc.setLocalDescription(await pc.createAnswer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def close(self, pc: RTCPeerConnection) -> None:
        self.peers.discard(pc)
        await pc.close()


def add_webrtc_routes(app: FastAPI, service: LiveService) -> WebRTCService:
    """Serve the live page and its signalling route on `app` (before any catch-all route)."""
    rtc = WebRTCService(service)

    async def offer(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            return JSONResponse(await rtc.answer(body))
        except EDTalkError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    def page_file(name: str):
        async def serve() -> FileResponse:
            return FileResponse(PAGE_DIR / name)

        return serve

    async def to_page() -> RedirectResponse:
        return RedirectResponse(PAGE_ROUTE)

    app.add_api_route(OFFER_ROUTE, offer, methods=["POST"])
    for suffix, name in PAGE_FILES.items():
        app.add_api_route(PAGE_ROUTE + suffix, page_file(name), methods=["GET"])
    app.add_api_route(PAGE_ROUTE.rstrip("/"), to_page, methods=["GET"])
    to_front(app, 2 + len(PAGE_FILES))
    return rtc
