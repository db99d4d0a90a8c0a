"""The live WebSocket endpoint round-trips: hello, PCM chunks in, timed JPEG frames out."""

import base64
import json

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edtalk import audio as audio_io
from edtalk.checkpoints import LIP_POSE
from edtalk.live.server import ROUTE, LiveService, add_live_route
from edtalk.options import PipelineOptions

from .conftest import MEDIA


@pytest.fixture(scope="module")
def client(narrow_ckpts):
    app = FastAPI()
    options = PipelineOptions(ckpt_dir=narrow_ckpts, model=LIP_POSE, device="cpu", precision="fp32", crop=False)
    add_live_route(app, LiveService(options))
    return TestClient(app)


def hello(**extra) -> str:
    source = base64.b64encode((MEDIA / "identity_source.jpg").read_bytes()).decode()
    return json.dumps({"source": source, "sample_rate": 16000, "format": "s16", **extra})


def test_pcm_in_frames_out(client):
    speech = audio_io.load_wav(MEDIA / "speech_16k.wav")[: 6 * 640]
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    with client.websocket_connect(ROUTE) as ws:
        ws.send_text(hello())
        ready = ws.receive_json()
        assert ready["ready"] and ready["fps"] == 25 and ready["lookahead_ms"] == pytest.approx(137.5)
        for start in range(0, len(pcm), 1280):  # 40 ms chunks
            ws.send_bytes(pcm[start : start + 1280])
        ws.send_text(json.dumps({"end": True}))
        headers, images = [], []
        while "done" not in (message := ws.receive_json()):
            headers.append(message)
            images.append(cv2.imdecode(np.frombuffer(ws.receive_bytes(), np.uint8), cv2.IMREAD_COLOR))
    stats = message["stats"]
    assert stats["frames"] == 6 and stats["rendered"] + stats["dropped"] == 6
    assert [h["start_s"] for h in headers] == [h["frame"] * 0.04 for h in headers]  # audio-clock timestamps
    assert headers and all(img.shape == (256, 256, 3) for img in images)


def test_a_bad_hello_gets_one_line(client):
    with client.websocket_connect(ROUTE) as ws:
        ws.send_text(hello(sample_rate=0))
        assert ws.receive_json() == {"error": "hello: 'sample_rate' must be a positive integer (Hz)"}
    with client.websocket_connect(ROUTE) as ws:
        ws.send_text(json.dumps({"source": "aGVsbG8=", "sample_rate": 16000}))
        assert "not an image file" in ws.receive_json()["error"]
