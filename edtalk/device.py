"""Choosing the torch device from a user setting: auto, cpu, cuda[:N] or mps."""

import torch

from .errors import EDTalkError


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
