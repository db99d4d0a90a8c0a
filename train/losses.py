"""Loss terms and validation metrics of the EDTalk training stages: small pure functions."""

import torch
import torch.nn.functional as F


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator GAN loss: mean softplus(-D(fake))."""
    return F.softplus(-fake_logits).mean()


def d_nonsaturating(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator GAN loss: mean softplus(-D(real)) + mean softplus(D(fake))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def l1(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (recon - target).abs().mean()


def latent_consistency(cross: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mouth-pose decoupling feature constraint: sum over the batch of exp(-cos(cross, reference))
    between (B, 512) sub-latents from cross- and self-reconstruction."""
    return torch.exp(-F.cosine_similarity(cross, reference, dim=1)).sum()


def image_metrics(recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image reconstruction metrics of (B, 3, H, W) images in [-1, 1]: mean absolute error
    'l1' (B,) and 'psnr' (B,) in dB of the clamped images mapped to [0, 1]."""
    l1_each = (recon - target).abs().flatten(1).mean(1)
    mse = ((recon.clamp(-1, 1) - target) / 2).square().flatten(1).mean(1)
    return {"l1": l1_each, "psnr": -10 * torch.log10(mse.clamp_min(1e-10))}


def sync_loss(similarity: torch.Tensor, in_sync: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of the (clamped, [0, 1]) similarity against 1 (in sync) / 0 (off)."""
    return F.binary_cross_entropy(similarity.clamp(1e-6, 1 - 1e-6), in_sync, reduction=reduction)
