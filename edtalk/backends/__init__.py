"""Generator backends: the PyTorch generator, or its per-frame networks compiled by OpenVINO (CPU).

    backend = make_backend(generator, "lip_pose", torch.device("cpu"), torch.float32, name="auto")

Every backend has the interface of edtalk/torch_backend.GeneratorBackend (encode_source, animate,
motion, config, model, device, precision, fingerprint). `auto` is OpenVINO on the CPU when the
`openvino` package imports, else PyTorch (one log line says why).
"""

import importlib.util
import logging
from pathlib import Path

import torch

from networks import Generator

from ..device import precision_name
from ..errors import EDTalkError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino")


def openvino_available() -> bool:
    """Whether the `openvino` package is installed."""
    return importlib.util.find_spec("openvino") is not None


def resolve_backend(name: str, device: torch.device) -> str:
    """'torch' or 'openvino' for a requested backend name (see the module docstring)."""
    if name not in BACKENDS:
        raise EDTalkError(f"--backend must be one of {', '.join(BACKENDS)}, got {name}")
    if name == "openvino" and device.type != "cpu":
        raise EDTalkError(f"--backend openvino runs on the CPU, but the device is {device}: use --device cpu")
    if name == "openvino" and not openvino_available():
        raise EDTalkError("--backend openvino needs the openvino package: pip install -r requirements.txt")
    if name != "auto":
        return name
    if device.type != "cpu":
        return "torch"
    if not openvino_available():
        log.warning("openvino is not installed: rendering with PyTorch (pip install -r requirements.txt)")
        return "torch"
    return "openvino"


def make_backend(
    generator: Generator,
    model: str,
    device: torch.device,
    precision: torch.dtype,
    name: str = "auto",
    cache_dir: str | Path | None = None,
):
    """The generator behind the interface of edtalk/torch_backend.GeneratorBackend, on `name`'s runtime.

    cache_dir: where OpenVINO keeps its exported and compiled models (default ~/.cache/edtalk/openvino).
    """
    if resolve_backend(name, device) == "openvino":
        from .openvino import OpenVINOGenerator

        return OpenVINOGenerator(generator, model, precision, cache_dir)
    from ..torch_backend import TorchGenerator

    return TorchGenerator(generator, model, device, precision)


def describe(backend) -> str:
    """'openvino fp32', 'torch bf16'...: the runtime and the precision a backend computes in."""
    return f"{getattr(backend, 'name', 'torch')} {precision_name(backend.precision)}"
