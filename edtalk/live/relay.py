"""One WebRTC peer's media: its microphone track through a LiveSession into a video and an audio track.

The session's frames are timed by the audio sample clock, so the outgoing tracks are too: video
frame i carries the RTP time i / 25 s, and the microphone's own audio goes back out as each of its
frames is reached (kept or dropped), so the browser plays the voice in step with the mouth. Both
tracks leave the server as the frames are made (the session's look-ahead plus the compute after
the audio arrives); the browser's jitter buffer plays them out.
"""

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .features import FPS
from .session import LiveFrame, LiveSession

VIDEO_CLOCK = 90_000  # RTP video clock (Hz)
STATS_WINDOW = 1.0  # seconds of recent frames behind the figures sent to the page


class QueueTrack(MediaStreamTrack):
    """An outgoing track of `kind` ('audio' or 'video') fed by `put`; `end()` stops it."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue = asyncio.Queue()

    def put(self, frame: av.AudioFrame | av.VideoFrame) -> None:
        self.queue.put_nowait(frame)

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def recv(self) -> av.AudioFrame | av.VideoFrame:
        frame = await self.queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame


def video_frame(frame: LiveFrame) -> av.VideoFrame:
    """A session frame as a video frame stamped with its place on the audio clock."""
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.image), format="rgb24")
    out.pts, out.time_base = round(frame.index * VIDEO_CLOCK / FPS), Fraction(1, VIDEO_CLOCK)
    return out


def audio_frame(samples: np.ndarray, rate: int, pts: int) -> av.AudioFrame:
    """Mono float samples (n,) in [-1, 1] as a 16-bit audio frame starting at sample `pts`."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None]
    out = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    out.sample_rate, out.pts, out.time_base = rate, pts, Fraction(1, rate)
    return out


class LiveRelay:
    """Feeds a peer's microphone into `session` (`consume`), fills `video` and `audio`, and measures
    the frames it sends: `figures()` for the page's data channel. clock: seconds (tests fake it)."""

    def __init__(self, session: LiveSession, clock: Callable[[], float] = time.perf_counter):
        self.session, self.clock = session, clock
        self.video, self.audio = QueueTrack("video"), QueueTrack("audio")
        self.to_float = av.AudioResampler(format="fltp")  # planar float, the channels kept (mixed by their mean)
        self.rate: int | None = None
        self.received = 0  # microphone samples received
        self.held = np.zeros(0, np.float32)  # microphone samples not yet sent back (their frame is not made)
        self.inbox: list[np.ndarray] = []  # microphone chunks the session has not taken yet
        self.arrived = asyncio.Event()  # set when the inbox gets a chunk or the microphone ends
        self.arrivals: deque[tuple[int, float]] = deque()  # (a chunk's first frame, its arrival) awaiting it
        self.frame_times: deque[float] = deque()  # when each recent frame was sent
        self.latencies: deque[tuple[float, float]] = deque()  # (measured at, a recent chunk's latency in s)

    async def consume(self, track: MediaStreamTrack) -> None:
        """Run the session on the microphone until its track ends, then flush and end both tracks.
        Audio is read as it comes; the session takes all that arrived while it was busy in one push."""
        reader = asyncio.ensure_future(self._read(track))
        try:
            while not reader.done():
                await self.arrived.wait()
                self.arrived.clear()
                await self.run_session()
        finally:
            reader.cancel()
            await self.run_session()
            self.send(await asyncio.to_thread(self.session.close), last=True)
            self.video.end()
            self.audio.end()

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                for frame in self.to_float.resample(await track.recv()):
                    self.receive(frame.to_ndarray().mean(0, dtype=np.float32), frame.sample_rate)
        except MediaStreamError:
            pass
        finally:
            self.arrived.set()

    def receive(self, samples: np.ndarray, rate: int) -> None:
        """A microphone chunk (mono float32 at `rate`) has arrived: note when, and queue it for the session."""
        self.rate = self.rate or rate
        self.arrivals.append((int(self.received * FPS // rate), self.clock()))
        self.received += len(samples)
        self.held = np.concatenate([self.held, samples])
        self.inbox.append(samples)
        self.arrived.set()

    async def run_session(self) -> None:
        """All the audio received since the last run through the session (in a thread); send what it makes."""
        if self.inbox:
            samples, self.inbox = np.concatenate(self.inbox), []
            self.send(await asyncio.to_thread(self.session.push, samples, self.rate))

    def send(self, frames: list[LiveFrame], last: bool = False) -> None:
        """Queue the frames, and the microphone audio up to the last frame reached (all of it when `last`)."""
        now = self.clock()
        for frame in frames:
            self.video.put(video_frame(frame))
            self.frame_times.append(now)
            while self.arrivals and self.arrivals[0][0] <= frame.index:
                self.latencies.append((now, now - self.arrivals.popleft()[1]))
        if self.rate is None:
            return
        count = len(self.held) if last else int(self.session.stats["frames"] * self.rate // FPS) - self.sent
        if count > 0:
            self.audio.put(audio_frame(self.held[:count], self.rate, self.sent))
            self.held = self.held[count:]

    @property
    def sent(self) -> int:
        """Microphone samples sent back out."""
        return self.received - len(self.held)

    def figures(self) -> dict:
        """The page's figures over the last STATS_WINDOW seconds: frames sent per second, the median
        latency (a chunk's arrival to the first frame showing it) and the session's counters."""
        since = self.clock() - STATS_WINDOW
        while self.frame_times and self.frame_times[0] < since:
            self.frame_times.popleft()
        while self.latencies and self.latencies[0][0] < since:
            self.latencies.popleft()
        latency = 1000 * float(np.median([lat for _, lat in self.latencies])) if self.latencies else None
        return {"fps": len(self.frame_times) / STATS_WINDOW, "latency_ms": latency, **self.session.stats}

    async def report(self, channel, period: float = STATS_WINDOW) -> None:
        """Send `figures()` as JSON on a data channel every `period` seconds while it is open."""
        while channel.readyState in ("connecting", "open"):
            if channel.readyState == "open":
                channel.send(json.dumps(self.figures()))
            await asyncio.sleep(period)
