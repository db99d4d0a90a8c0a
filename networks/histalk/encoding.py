"""Positional encoding and attention masks shared by the HiSTalk decoders (FaceFormer's)."""

import math

import torch
from torch import nn


class PeriodicPositionalEncoding(nn.Module):
    """FaceFormer's periodic positional encoding: the sinusoid of position t mod `period`, added
    to (B, T, D) features so that arbitrarily long sequences reuse the positions seen in training."""

    def __init__(self, d_model: int, period: int):
        super().__init__()
        position = torch.arange(period, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(period, d_model)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
        self.register_buffer("table", table, persistent=False)
        self.period = period

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> x + encoding of positions 0..T-1 (periodic)."""
        index = torch.arange(x.shape[1], device=x.device) % self.period
        return x + self.table[index]


def alibi_bias(heads: int, length: int, period: int, device: torch.device) -> torch.Tensor:
    """FaceFormer's biased causal self-attention mask: (heads, T, T) float, -inf above the diagonal,
    and a penalty -slope_h * floor((i - j) / period) for looking back (ALiBi slopes 2^(-8h/H))."""
    slopes = torch.tensor([2 ** (-8 * (h + 1) / heads) for h in range(heads)], device=device)
    i = torch.arange(length, device=device)
    distance = (i[:, None] - i[None, :]).clamp(min=0).div(period, rounding_mode="floor").float()
    bias = -slopes[:, None, None] * distance
    future = i[None, :] > i[:, None]
    return bias.masked_fill(future, float("-inf"))


def alignment_mask(length: int, device: torch.device) -> torch.Tensor:
    """FaceFormer's audio-motion alignment mask: frame t attends only to audio feature t.
    (T, T) boolean, True where attention is blocked."""
    return ~torch.eye(length, dtype=torch.bool, device=device)


def window_mask(length: int, half_width: int, device: torch.device) -> torch.Tensor:
    """Local attention: (T, T) boolean, True where |i - j| > half_width (blocked)."""
    i = torch.arange(length, device=device)
    return (i[:, None] - i[None, :]).abs() > half_width
