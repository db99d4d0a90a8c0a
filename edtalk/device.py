"""Choosing the torch device (auto, cpu, cuda[:N] or mps) and the network precision (auto, fp32, bf16, fp16)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

from .errors import EDTalkError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("auto", *DTYPES)
BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}  # /proc/cpuinfo flags of CPUs with bf16 arithmetic in hardware


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device that is not available raises EDTalkError."""
    if isinstance(name, torch.device):
        return name
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EDTalkError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EDTalkError("device 'cuda' requested but this PyTorch build sees no CUDA GPU (use --device cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EDTalkError("device 'mps' requested but Apple MPS is not available here (use --device cpu or auto)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise EDTalkError(f"unsupported device '{name}': use auto, cpu, cuda, cuda:N or mps")
    return device


def synchronize(device: torch.device) -> None:
    """Wait until queued GPU work on `device` has finished (for timing); nothing to do on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_flags() -> set[str]:
    """The feature flags of this machine's CPU as the kernel reports them (/proc/cpuinfo); empty if unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device) -> bool:
    """True where bf16 is computed in hardware: CUDA compute capability >= 8.0 (Ampere and later),
    CPUs with AMX-BF16 (Intel Sapphire Rapids and later) or AVX512-BF16 (AMD Zen 4 and later).
    Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return bool(BF16_CPU_FLAGS & cpu_flags())
    return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype the networks compute in: 'auto' is bf16 where `native_bf16(device)`, else fp32 (and
    always fp32 on MPS); 'fp32' is the exact mode that matches the official outputs."""
    if name not in PRECISIONS:
        raise EDTalkError(f"precision must be one of {', '.join(PRECISIONS)}, got {name}")
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if name == "fp16" and device.type == "cpu":
        raise EDTalkError("fp16 needs a GPU; use --precision bf16 or fp32 on the CPU")
    return DTYPES[name]


def precision_name(dtype: torch.dtype) -> str:
    """'fp32', 'bf16' or 'fp16' for a dtype from `resolve_precision`."""
    return next(name for name, d in DTYPES.items() if d == dtype)


@contextlib.contextmanager
def exact_fp32(device: torch.device) -> Iterator[None]:
    """Within the block, fp32 convolutions and matrix products on a CUDA `device` run in full fp32:
    cuDNN and cuBLAS may otherwise use TF32 (10-bit mantissas) on Ampere and later GPUs, and
    `--precision fp32` is the exact mode. The previous settings come back afterwards."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
