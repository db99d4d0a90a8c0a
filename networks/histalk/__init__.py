"""HiSTalk (speech -> 3D face mesh): pure torch networks; loading and I/O live in histalk/."""

from .audio import MelEncoder, Wav2Vec2Features
from .config import HiSTalkConfig
from .model import HiSTalk, histalk_losses

__all__ = ["HiSTalk", "HiSTalkConfig", "MelEncoder", "Wav2Vec2Features", "histalk_losses"]
