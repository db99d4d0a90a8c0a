"""The options of a live session, declared once (flags for benchmarks/bench_live.py and the server)."""

from dataclasses import dataclass

from ..errors import EDTalkError
from ..options import RenderOptions, defaults, option

LATENCIES = ("exact", "low")
POSES = ("auto", "audio", "still")


@dataclass(frozen=True)
class LiveOptions:
    """How a live session turns speech into motion (see docs/live.md)."""

    latency: str = option(
        "exact",
        "latency",
        "exact: the offline mouth (look-ahead 97.5 ms + 40 ms smoothing); low: each frame from the audio up to "
        "its own end (no look-ahead, a less accurate mouth)",
        choices=LATENCIES,
    )
    silence_db: float | None = option(
        -50.0, "silence_db", "a frame whose 200 ms of audio stays below this level (dBFS) closes the mouth", type=float
    )
    pose: str = option(
        "auto",
        "pose",
        "head motion: audio (Audio2Pose.pt), still, or auto (audio when the checkpoint exists)",
        choices=POSES,
    )
    pose_temperature: float = option(
        0.3, "pose_temperature", "head motion from the speech: 0 calm and deterministic, 1 lively", type=float
    )
    seed: int = defaults(RenderOptions)["seed"]
    exp_type: str | None = defaults(RenderOptions)["exp_type"]

    def check(self) -> None:
        """One-line EDTalkError for a value out of range."""
        if self.latency not in LATENCIES:
            raise EDTalkError(f"latency must be one of {', '.join(LATENCIES)}, got {self.latency!r}")
        if self.pose not in POSES:
            raise EDTalkError(f"pose must be one of {', '.join(POSES)}, got {self.pose!r}")
        if self.pose_temperature < 0:
            raise EDTalkError(f"the pose temperature must be 0 or more, got {self.pose_temperature}")
