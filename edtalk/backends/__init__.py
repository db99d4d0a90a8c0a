"""Generator backends: the PyTorch generator, or its per-frame networks compiled by OpenVINO (CPU).

    backend = make_backend(generator, "lip_pose", torch.device("cpu"), torch.float32, name="auto")

Every backend has the interface of edtalk/torch_backend.GeneratorBackend (encode_source, animate,
motion, name, config, model, device, precision, fingerprint). `auto` is the backend named by the
environment variable EDTALK_BACKEND if set (a machine-wide choice, e.g. for the web UI), else
OpenVINO on the CPU when the `openvino` package imports, else PyTorch (one log line says why);
`--compile` (torch.compile) is a PyTorch option, so with it `auto` is PyTorch.
"""

import importlib.util
import logging
import os
from pathlib import Path

import torch

from networks import Generator

from ..device import precision_name
from ..errors import EDTalkError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "openvino")
ENVIRONMENT = "EDTALK_BACKEND"  # what `auto` means on this machine, if set


def openvino_available() -> bool:
    """Whether the `openvino` package is installed."""
    return importlib.util.find_spec("openvino") is not None


def auto_backend(device: torch.device) -> str:
    """What `auto` runs on `device`: $EDTALK_BACKEND if set, else the fastest backend installed
    ('openvino' on the CPU when installed, else 'torch')."""
    chosen = os.environ.get(ENVIRONMENT)
    if chosen:
        if chosen not in BACKENDS[1:]:
            raise EDTalkError(f"{ENVIRONMENT} must be one of {', '.join(BACKENDS[1:])}, got {chosen}")
        return resolve_backend(chosen, device)
    if device.type != "cpu":
        return "torch"
    if not openvino_available():
        log.warning("openvino is not installed: rendering with PyTorch (pip install -r requirements.txt)")
        return "torch"
    return "openvino"


def resolve_backend(name: str, device: torch.device, compile: bool = False) -> str:
    """'torch' or 'openvino' for a requested backend name (see the module docstring); `compile`:
    the PyTorch decoder is to be torch.compile'd."""
    if name not in BACKENDS:
        raise EDTalkError(f"--backend must be one of {', '.join(BACKENDS)}, got {name}")
    if name == "auto":
        return "torch" if compile else auto_backend(device)
    if name == "openvino":
        if device.type != "cpu":
            raise EDTalkError(f"--backend openvino runs on the CPU, but the device is {device}: use --device cpu")
        if compile:
            raise EDTalkError("--compile compiles the PyTorch decoder: use it with --backend torch or auto")
        if not openvino_available():
            raise EDTalkError("--backend openvino needs the openvino package: pip install -r requirements.txt")
    return name


def make_backend(
    generator: Generator,
    model: str,
    device: torch.device,
    precision: torch.dtype,
    name: str = "auto",
    cache_dir: str | Path | None = None,
    batch_size: int = 1,
    compile: bool = False,
    cuda_graphs: bool = False,
):
    """The generator behind the interface of edtalk/torch_backend.GeneratorBackend, on `name`'s runtime.

    cache_dir: where OpenVINO keeps its exported and compiled models (default ~/.cache/edtalk/openvino);
    batch_size: the frames per animate call (OpenVINO pads a smaller last batch to it, so that one
    compiled shape serves the whole clip); compile: torch.compile the PyTorch decoder; cuda_graphs:
    replay the PyTorch decoder as a CUDA graph at batch 1 (edtalk/cuda_graphs.py).
    """
    runtime = resolve_backend(name, device, compile)
    if cuda_graphs and (device.type != "cuda" or runtime != "torch" or compile):
        raise EDTalkError(
            f"--cuda_graphs replays the PyTorch decoder on a CUDA GPU (without --compile), but the device is "
            f"{device} and the backend {runtime}{' with --compile' if compile else ''}"
        )
    if runtime == "openvino":
        from .openvino import OpenVINOGenerator

        return OpenVINOGenerator(generator, model, precision, cache_dir, batch_size)
    from ..torch_backend import TorchGenerator

    if compile:
        generator.dec = torch.compile(generator.dec)
    return TorchGenerator(generator, model, device, precision, cuda_graphs)


def describe(backend) -> str:
    """'openvino fp32', 'torch bf16'...: the runtime and the precision a backend computes in."""
    return f"{backend.name} {precision_name(backend.precision)}"
