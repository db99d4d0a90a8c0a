"""Flow-warping StyleGAN-like decoder (`dec.*`, LIA's "Synthesis") with optional EEM blocks."""

import torch
from torch import nn

from .eem import EEM
from .layers import ConstantInput, StyledConv, ToFlow, ToRGB

# Channels per decoder resolution (channel_multiplier 1).
DECODER_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}


class Synthesis(nn.Module):
    """Renders an image from a latent code and the source's encoder features.

    At each level L (8x8 ... size) the decoder predicts a flow and mask, warps the source feature
    feats[L] with it and blends; the RGB image is accumulated from the warped features.
    With `expression=True` (full EDTalk) each feats[L] first passes through an EEM conditioned on
    the expression latent e. `divisor` divides every width (1: the official network).
    """

    def __init__(self, size: int = 256, style_dim: int = 512, expression: bool = True, divisor: int = 1):
        super().__init__()
        self.size = size
        width = {res: ch // divisor for res, ch in DECODER_CHANNELS.items()}
        self.input = ConstantInput(width[4])
        self.conv1 = StyledConv(width[4], width[4], 3, style_dim)
        self.to_rgb1 = ToRGB(width[4], upsample=False)  # in the checkpoint, never called
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.to_flows = nn.ModuleList()
        in_ch = width[4]
        for i in range(3, size.bit_length()):
            out_ch = width[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_ch))
            self.to_flows.append(ToFlow(out_ch, style_dim))
            in_ch = out_ch
        if expression:
            self.fineadainresblock = nn.ModuleList(EEM(width[2**i]) for i in range(3, size.bit_length()))
        else:
            self.fineadainresblock = None

    def prepare_eem(self, feats: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The expression-independent part of every EEM for these source features (None without EEM)."""
        if self.fineadainresblock is None:
            return None
        return [eem.prepare(f) for eem, f in zip(self.fineadainresblock, feats)]

    def forward(
        self,
        latent: torch.Tensor,
        feats: list[torch.Tensor],
        exp_latent: torch.Tensor | None = None,
        eem_normalized: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """latent (B, 512); feats from the encoder (batch 1 or B); exp_latent (B, 512) or None.

        eem_normalized: optional output of `prepare_eem(feats)` to skip recomputing it.
        Returns (B, 3, size, size), nominally in [-1, 1] but not clamped.
        """
        out = self.conv1(self.input(latent), latent)
        rgb = flow = None
        for level, feat in enumerate(feats):
            out = self.convs[2 * level](out, latent)
            out = self.convs[2 * level + 1](out, latent)
            if self.fineadainresblock is not None and exp_latent is not None:
                normalized = eem_normalized[level] if eem_normalized is not None else None
                feat = self.fineadainresblock[level](feat, exp_latent, normalized)
            warped, out, flow = self.to_flows[level](out, latent, feat, flow)
            rgb = self.to_rgbs[level](warped, rgb)
        return rgb.contiguous()  # the layers run channels_last; callers get the usual layout
