"""Keeping video in step with the audio when rendering is slower than playback.

Every frame is timed by the audio sample clock (frame i shows samples [640 i, 640 (i + 1)) at
16 kHz), never by wall time, so the video cannot drift from the audio. What rendering speed
decides is only how many of those frames are drawn: a player consumes 25 frames per second of
audio, so when a frame costs more than 40 ms to render the pacer keeps the share
period / cost of the frames, evenly spaced, and the others are dropped (the player holds the
previous image a little longer). The cost is the mean render time of the last few rendered
frames, read from an injectable clock (tests pass a fake one).
"""

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

COST_WINDOW = 8  # rendered frames whose mean cost sets the share kept


class FramePacer:
    """Decides, frame by frame, whether to render (`keep`) and times the renders (`timed`).

    fps: the playback rate; clock: seconds, monotonic (time.perf_counter by default).
    """

    def __init__(self, fps: float = 25.0, clock: Callable[[], float] = time.perf_counter):
        self.period = 1.0 / fps
        self.clock = clock
        self.costs: deque[float] = deque(maxlen=COST_WINDOW)
        self.credit = 0.0  # frames' worth of render time saved up (an even-spacing accumulator)
        self.frames = 0
        self.rendered = 0

    @property
    def share(self) -> float:
        """The share of frames that can be rendered in real time (1 until a render has been timed)."""
        if not self.costs:
            return 1.0
        return min(1.0, self.period / max(sum(self.costs) / len(self.costs), 1e-9))

    def keep(self) -> bool:
        """Whether to render the next frame (in order); the frames kept are spread evenly."""
        self.frames += 1
        self.credit += self.share
        if self.credit < 1.0 - 1e-9:
            return False
        self.credit -= 1.0
        self.rendered += 1
        return True

    @contextmanager
    def timed(self, frames: int = 1) -> Iterator[None]:
        """Time a render of `frames` frames on the clock."""
        start = self.clock()
        yield
        self.costs.append((self.clock() - start) / frames)

    @property
    def dropped(self) -> int:
        return self.frames - self.rendered

    @property
    def achieved_fps(self) -> float:
        """Frames rendered per second of audio."""
        return self.rendered / (self.frames * self.period) if self.frames else 0.0
