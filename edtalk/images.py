"""The one conversion between images as arrays and as network tensors, and its checks.

Arrays are RGB uint8 (N, H, W, 3), as decoded and written; tensors are float (N, 3, H, W) in
[-1, 1] (x / 127.5 - 1), as every network of the project takes and returns them.
"""

import numpy as np
import torch

from .errors import EDTalkError


class ImageTensorError(EDTalkError):
    """An image tensor handed to the generator has the wrong shape, dtype or value range."""


def to_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] on `device`."""
    x = torch.from_numpy(np.require(frames, np.uint8, ["C", "W"])).to(device)
    return x.permute(0, 3, 1, 2).float().div(255).sub(0.5).mul(2)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) tensor in [-1, 1] -> (N, H, W, 3) uint8, by clamping (no per-clip min-max rescaling)."""
    x = images.detach().clamp(-1, 1).add(1).mul(127.5).round().to("cpu")
    return x.byte().permute(0, 2, 3, 1).numpy()


def check_image_tensor(name: str, x: torch.Tensor, size: int = 256) -> None:
    """ImageTensorError (one line) unless `x` is a floating (B, 3, size, size) tensor in [-1, 1].
    The range check reads two numbers back from the device: call it on user input, not per frame."""
    if not torch.is_tensor(x) or x.dim() != 4 or tuple(x.shape[1:]) != (3, size, size):
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ImageTensorError(f"{name} must be a (B, 3, {size}, {size}) image tensor in [-1, 1], got {shape}")
    if not x.is_floating_point():
        raise ImageTensorError(f"{name} must be a floating-point tensor in [-1, 1], got dtype {x.dtype}")
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if lo < -1.01 or hi > 1.01:
        raise ImageTensorError(
            f"{name} values must lie in [-1, 1] (RGB scaled as x/127.5 - 1), got [{lo:.3g}, {hi:.3g}]"
        )
