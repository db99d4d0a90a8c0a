"""EDTalk networks: pure PyTorch modules, no file I/O, no device or argument handling."""

from .audio2lip import Audio2Lip, gaussian_kernel, smooth_coefficients
from .generator import EDTALK, LIP_POSE, Generator, GeneratorConfig, SourceEncoding

__all__ = [
    "Audio2Lip",
    "EDTALK",
    "LIP_POSE",
    "Generator",
    "GeneratorConfig",
    "SourceEncoding",
    "gaussian_kernel",
    "smooth_coefficients",
]
