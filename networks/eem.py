"""Expression Enhancement Module (EEM): an AdaIN residual block on the encoder skip features.

Key prefix `dec.fineadainresblock.L`. The official forward also computes an
actvn(norm1(conv1(x))) branch and then discards it; `conv1`/`norm1` are kept only so the
checkpoint loads strictly. The output is x + AdaIN(conv2(x), e).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .layers import inplace_ok, same_layout


class ADAIN(nn.Module):
    """Instance norm (no affine, per-sample statistics even in eval) modulated by a latent code."""

    def __init__(self, channels: int, feature_dim: int = 512, hidden: int = 128):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU())
        self.mlp_gamma = nn.Linear(hidden, channels)
        self.mlp_beta = nn.Linear(hidden, channels)

    @staticmethod
    def normalize(y: torch.Tensor) -> torch.Tensor:
        """Parameter-free instance norm of (B, C, H, W), eps 1e-5, biased variance."""
        return F.instance_norm(y, eps=1e-5)

    def modulate(self, normalized: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """normalized (1 or B, C, H, W), z (B, feature_dim) -> normalized * (1 + gamma) + beta."""
        a = self.mlp_shared(z)
        gamma = self.mlp_gamma(a)[:, :, None, None]
        beta = self.mlp_beta(a)[:, :, None, None]
        return torch.addcmul(beta.to(normalized.dtype), normalized, (1 + gamma).to(normalized.dtype))

    def forward(self, y: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if z is None:
            return y
        return self.modulate(self.normalize(y), z)


class EEM(nn.Module):
    """forward(x (B,C,H,W), e (B,512) or None) -> x + AdaIN(conv2(x), e); identity when e is None.

    `prepare(x)` computes the part that depends on x only (instance-normalised conv2(x)), so a
    source image's features can be prepared once and reused for every frame via `normalized=`.
    """

    def __init__(self, channels: int, feature_dim: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = ADAIN(channels, feature_dim)
        self.norm2 = ADAIN(channels, feature_dim)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> instance-normalised conv2(x) (B, C, H, W), float32, in x's memory layout."""
        return same_layout(ADAIN.normalize(self.conv2(x)).float(), x)

    @torch.no_grad()
    def init_identity(self) -> None:
        """Make the block an exact identity that still learns: the AdaIN scale 1 + gamma is 0
        (norm2.mlp_gamma weight 0, bias -1) and the shift beta is 0 (norm2.mlp_beta weight and bias
        0), so x + AdaIN(conv2 x, e) = x for every e, while gamma and beta receive gradients
        (d out / d gamma = IN(conv2 x), d out / d beta = 1). conv2 is left as it is: zeroing it
        would feed the instance norm a constant, whose gradient is scaled by 1 / sqrt(eps)."""
        gamma, beta = self.norm2.mlp_gamma, self.norm2.mlp_beta
        gamma.weight.zero_()
        gamma.bias.fill_(-1.0)
        beta.weight.zero_()
        beta.bias.zero_()

    def forward(self, x: torch.Tensor, e: torch.Tensor | None, normalized: torch.Tensor | None = None) -> torch.Tensor:
        if e is None:
            return x
        if normalized is None:
            normalized = self.prepare(x)
        out = self.norm2.modulate(normalized, e)  # float32 (instance norm runs in float32 under autocast)
        return out.add_(x) if inplace_ok(out) and out.shape == torch.broadcast_shapes(out.shape, x.shape) else out + x
