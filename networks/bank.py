"""Motion banks: learned bases orthonormalised by QR, combined with per-frame coefficients."""

import torch
from torch import nn


class Direction(nn.Module):
    """A bank of `count` motion bases stored as the columns of `weight` (dim, count)."""

    def __init__(self, count: int, dim: int = 512):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim, count))


def orthonormal_basis(*banks: torch.Tensor) -> torch.Tensor:
    """Q (dim, K) of the reduced QR of the column-concatenated banks + 1e-8, in float32.

    Householder QR without sign normalisation, as the official code; columns keep the order of
    `banks` (mouth, pose[, expression]).
    """
    weight = torch.cat([b.float() for b in banks], dim=1) + 1e-8
    q, _ = torch.linalg.qr(weight, mode="reduced")
    return q


def combine(alpha: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Per-basis motion vectors: alpha (B, K), basis (dim, K) -> (B, K, dim), A[b,k] = alpha[b,k] Q[:,k]."""
    return alpha.float()[:, :, None] * basis.t()[None]
