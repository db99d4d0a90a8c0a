"""Keeping video in step with the audio when the session computes slower than playback.

Every frame is timed by the audio sample clock (frame i shows samples [640 i, 640 (i + 1)) at
16 kHz), never by wall time, so the video cannot drift from the audio. What the speed of the
machine decides is only how many of those frames are drawn. Each frame of audio earns one frame
period (40 ms) of compute; everything the session spends (the audio features, the mouth and pose
networks, the renders) is charged against it, read from an injectable clock (tests pass a fake
one), and a frame is rendered only when the session is not in debt. So the frames kept are
spread evenly, a stall is paid back by dropping the frames after it, and the session's compute
never runs more than one render behind the audio. Savings are capped at `SAVINGS` periods, so a
cheap spell never buys a burst of frames later.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SAVINGS = 2  # frame periods of unspent compute a session may carry forward (absorbs jitter)


class FramePacer:
    """Decides, frame by frame, whether to render (`keep`); charged for all compute (`spending`).

    fps: the playback rate; clock: seconds, monotonic (time.perf_counter by default).
    """

    def __init__(self, fps: float = 25.0, clock: Callable[[], float] = time.perf_counter):
        self.period = 1.0 / fps
        self.clock = clock
        self.budget = 0.0  # seconds: the frames' periods so far less the compute spent (capped)
        self.frames = 0
        self.rendered = 0

    def keep(self) -> bool:
        """Whether to render the next frame (in order): its period added, the budget is not negative."""
        self.frames += 1
        self.budget = min(self.budget + self.period, SAVINGS * self.period)
        if self.budget < 0:
            return False
        self.rendered += 1
        return True

    @contextmanager
    def spending(self) -> Iterator[None]:
        """Charge the time spent inside (a render, the audio features, the mouth and pose networks)."""
        start = self.clock()
        yield
        self.budget -= self.clock() - start

    @property
    def dropped(self) -> int:
        return self.frames - self.rendered

    @property
    def achieved_fps(self) -> float:
        """Frames rendered per second of audio."""
        return self.rendered / (self.frames * self.period) if self.frames else 0.0
