"""The WebRTC side of live mode without a browser: the relay sends the voice back in step with the frames
and measures the latency; the page and the signalling route answer, bad offers get one line."""

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edtalk.live.features import FRAME_SAMPLES
from edtalk.live.relay import VIDEO_CLOCK, LiveRelay
from edtalk.live.server import LiveService
from edtalk.live.webrtc import OFFER_ROUTE, PAGE_ROUTE, add_webrtc_routes

from .test_live import FakeClock, pipeline_options, speech, stub_session  # noqa: F401 (speech is a fixture)

RATE, CHUNK = 48000, 960  # the browser's microphone: 20 ms frames at 48 kHz
SAMPLES_PER_FRAME = RATE // 25


def drain(queue: asyncio.Queue) -> list:
    return [queue.get_nowait() for _ in range(queue.qsize())]


def test_the_relay_sends_the_voice_in_step_with_the_frames(narrow_ckpts, speech):  # noqa: F811
    clock = FakeClock()
    relay = LiveRelay(stub_session(narrow_ckpts, clock=clock), clock)
    mic = np.repeat(speech[: 10 * FRAME_SAMPLES], RATE // 16000)
    reached = []

    async def stream():
        for start in range(0, len(mic), CHUNK):
            clock.now += CHUNK / RATE  # the chunk arrives when its last sample has been spoken
            relay.receive(mic[start : start + CHUNK], RATE)
            await relay.run_session()
            reached.append((relay.session.stats["frames"], relay.sent))
        relay.send(relay.session.close(), last=True)

    asyncio.run(stream())
    assert all(sent == frames * SAMPLES_PER_FRAME for frames, sent in reached)  # the voice waits for its frame
    assert reached[-1][0] < 10  # the look-ahead held the last frames back until the end
    video, audio = drain(relay.video.queue), drain(relay.audio.queue)
    assert [f.pts for f in video] == [i * VIDEO_CLOCK // 25 for i in range(10)]
    assert all((f.width, f.height, f.format.name) == (8, 8, "rgb24") for f in video)  # the stub's pictures
    assert [f.pts for f in audio] == list(np.cumsum([0] + [f.samples for f in audio[:-1]]))
    assert sum(f.samples for f in audio) == len(mic) and audio[0].sample_rate == RATE
    figures = relay.figures()
    # no render cost: frame i is made when audio up to 40 i + 172.5 ms (its 40 ms and the 137.5 ms look-ahead)
    # has arrived, on the 20 ms chunk grid (180 ms); its chunks arrived at 40 i + 20 and + 40 ms: 160 and 140 ms
    assert 140 - 1e-6 <= figures["latency_ms"] <= 160 + 1e-6 and figures["fps"] == 10
    assert figures["frames"] == 10 and figures["dropped"] == 0


class StereoMicrophone:
    """A remote audio track as aiortc gives it: 20 ms frames of 16-bit stereo at 48 kHz, then the end."""

    kind = "audio"

    def __init__(self, mono: np.ndarray):
        self.mono, self.sent = mono, 0

    async def recv(self) -> av.AudioFrame:
        if self.sent >= len(self.mono):
            raise MediaStreamError
        chunk = (self.mono[self.sent : self.sent + CHUNK] * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(chunk, 2)[None], format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self.sent, Fraction(1, RATE)
        self.sent += len(chunk)
        return frame


def test_the_relay_runs_a_microphone_track_to_its_end(narrow_ckpts, speech):  # noqa: F811
    relay = LiveRelay(stub_session(narrow_ckpts))
    mic = np.repeat(speech[: 10 * FRAME_SAMPLES], RATE // 16000)
    asyncio.run(relay.consume(StereoMicrophone(mic)))
    video, audio = drain(relay.video.queue), drain(relay.audio.queue)
    assert video[-1] is None and audio[-1] is None  # both tracks end
    assert [f.pts for f in video[:-1]] == [i * VIDEO_CLOCK // 25 for i in range(10)]
    voice = np.concatenate([f.to_ndarray()[0] for f in audio[:-1]]) / 32767
    np.testing.assert_allclose(voice, mic, atol=2 / 32767)  # the mono voice, back unchanged


@pytest.fixture(scope="module")
def client(narrow_ckpts):
    app = FastAPI()
    add_webrtc_routes(app, LiveService(pipeline_options(narrow_ckpts)))
    return TestClient(app)


def test_the_page_is_served(client):
    page = client.get(PAGE_ROUTE)
    assert page.status_code == 200 and 'src="live.js"' in page.text and 'id="start"' in page.text
    assert "getUserMedia" in client.get(PAGE_ROUTE + "live.js").text
    assert client.get(PAGE_ROUTE.rstrip("/"), follow_redirects=False).headers["location"] == PAGE_ROUTE


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"sdp": "v=0", "type": "answer"}, "'sdp' and 'type': 'offer'"),
        ({"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}, "no audio track"),
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}, "'source' is not an image"),
    ],
)
def test_a_bad_offer_gets_one_line(client, body, error):
    answer = client.post(OFFER_ROUTE, json=body)
    assert answer.status_code == 400 and error in answer.json()["error"] and "\n" not in answer.json()["error"]
