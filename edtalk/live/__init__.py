"""Live mode: a talking head that speaks while the audio is still arriving (docs/live.md)."""

from .options import LiveOptions
from .session import LiveFrame, LiveSession

__all__ = ["LiveFrame", "LiveOptions", "LiveSession"]
