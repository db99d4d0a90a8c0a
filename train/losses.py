"""Loss terms of the EDTalk training stages: small pure functions, composed by the trainers."""

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
