"""The live WebSocket endpoint: a PCM stream in (e.g. from a TTS engine), frames out.

Served by the web UI's process (edtalk.live.mount.mount_live) at `/live/ws`. The protocol
(docs/live.md; examples/live_client.py is a client):

1. The client sends a JSON text message, the hello: {"source": base64 image file (JPEG/PNG) of
   the face, "sample_rate": Hz, "format": "f32" | "s16" (little-endian mono, default f32),
   "image": "jpeg" | "rgb" (default jpeg), "latency": "exact" | "low", "pose": ..., "exp_type": ...}.
2. The server answers {"ready": true, "fps": 25, "size": 256, "lookahead_ms": ...} or
   {"error": "..."} (then closes).
3. The client sends binary audio chunks of any size, then the text {"end": true}.
4. For every frame the server sends a JSON text header {"frame", "start_s", "end_s", "format",
   "bytes"} followed by one binary message: the JPEG file or the raw RGB bytes (256 x 256 x 3).
5. After the last frame: {"done": true, "stats": {...}}, then the server closes.
"""

import asyncio
import base64
import binascii
import dataclasses
import json

import cv2
import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ..errors import EDTalkError
from ..options import PipelineOptions
from .features import CFG, EXACT_LOOKAHEAD, FRAME_SAMPLES
from .options import LiveOptions
from .session import LiveFrame, LiveSession

ROUTE = "/live/ws"
FORMATS = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}
IMAGE_FORMATS = ("jpeg", "rgb")
JPEG_QUALITY = 85


class LiveService:
    """What every connection shares: the pipeline options and the generator backend (loaded once)."""

    def __init__(self, pipeline: PipelineOptions, renderer=None):
        self.pipeline, self.renderer = pipeline, renderer

    def session(self, hello: dict) -> LiveSession:
        """A session for a client's hello (EDTalkError for a bad one)."""
        try:
            data = base64.b64decode(hello.get("source", ""), validate=True)
        except (binascii.Error, TypeError) as exc:
            raise EDTalkError("hello: 'source' must be a base64-encoded image file") from exc
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise EDTalkError("hello: 'source' is not an image file (JPEG or PNG, base64-encoded)")
        names = {f.name for f in dataclasses.fields(LiveOptions)}
        live = LiveOptions(**{k: v for k, v in hello.items() if k in names})
        session = LiveSession(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), self.pipeline, live, self.renderer)
        self.renderer = session.renderer  # the first session loads the generator; later ones share it
        return session


def _hello(message: str) -> dict:
    """The parsed and checked hello."""
    try:
        hello = json.loads(message)
    except json.JSONDecodeError as exc:
        raise EDTalkError(f"the hello is not JSON: {exc}") from exc
    if not isinstance(hello, dict):
        raise EDTalkError("the hello must be a JSON object")
    if hello.get("format", "f32") not in FORMATS:
        raise EDTalkError(f"hello: 'format' must be one of {', '.join(FORMATS)}")
    if hello.get("image", "jpeg") not in IMAGE_FORMATS:
        raise EDTalkError(f"hello: 'image' must be one of {', '.join(IMAGE_FORMATS)}")
    if not isinstance(hello.get("sample_rate"), int) or hello["sample_rate"] <= 0:
        raise EDTalkError("hello: 'sample_rate' must be a positive integer (Hz)")
    return hello


def _samples(data: bytes, fmt: str) -> np.ndarray:
    """Mono float32 samples of one binary chunk."""
    dtype = FORMATS[fmt]
    raw = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype)
    return raw.astype(np.float32) / 32768 if fmt == "s16" else raw.astype(np.float32)


async def _send(ws: WebSocket, frames: list[LiveFrame], image: str) -> None:
    for frame in frames:
        if image == "jpeg":
            payload = cv2.imencode(".jpg", frame.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[
                1
            ].tobytes()
        else:
            payload = np.ascontiguousarray(frame.image).tobytes()
        header = {"frame": frame.index, "start_s": frame.start_s, "end_s": frame.end_s, "format": image}
        await ws.send_text(json.dumps({**header, "bytes": len(payload)}))
        await ws.send_bytes(payload)


async def serve(ws: WebSocket, service: LiveService) -> None:
    """One client's stream (the protocol in the module docstring)."""
    await ws.accept()
    try:
        hello = _hello(await ws.receive_text())
        session = await asyncio.to_thread(service.session, hello)
    except EDTalkError as exc:
        await ws.send_text(json.dumps({"error": str(exc)}))
        await ws.close()
        return
    lookahead = EXACT_LOOKAHEAD + FRAME_SAMPLES if session.lip.exact else 0
    ready = {"ready": True, "fps": 25, "size": 256, "lookahead_ms": 1000 * lookahead / CFG.sample_rate}
    await ws.send_text(json.dumps(ready))
    fmt, image, rate = hello.get("format", "f32"), hello.get("image", "jpeg"), hello["sample_rate"]
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                frames = await asyncio.to_thread(session.push, _samples(message["bytes"], fmt), rate)
                await _send(ws, frames, image)
            elif json.loads(message.get("text") or "{}").get("end"):
                break
        await _send(ws, await asyncio.to_thread(session.close), image)
        await ws.send_text(json.dumps({"done": True, "stats": session.stats}))
        await ws.close()
    except WebSocketDisconnect:
        return


def add_live_route(app: FastAPI, service: LiveService) -> None:
    """Serve the live endpoint at ROUTE on `app` (placed first, before any catch-all route)."""

    async def endpoint(ws: WebSocket) -> None:
        await serve(ws, service)

    app.add_api_websocket_route(ROUTE, endpoint)
    to_front(app)


def to_front(app: FastAPI, count: int = 1) -> None:
    """Move the `count` routes added last ahead of the others (the web UI ends with a catch-all route)."""
    routes = app.router.routes
    routes[:0] = [routes.pop() for _ in range(count)][::-1]
