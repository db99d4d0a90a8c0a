"""LIA appearance/motion encoder (`enc.net_app`): one pass gives the latent code and skip features."""

import torch
from torch import nn

from .layers import ConvLayer, EqualConv2d, ResBlock

# Channels per feature resolution (channel_multiplier 1).
ENCODER_CHANNELS = {256: 64, 128: 128, 64: 256, 32: 512, 16: 512, 8: 512, 4: 512}


def residual_tower(size: int, divisor: int = 1) -> tuple[list[nn.Module], int]:
    """1x1 ConvLayer to 64 channels, then ResBlocks halving the resolution down to 4x4.

    The common trunk of the encoder and the discriminator; returns the layers and the last width.
    `divisor` divides every width (1: the official network).
    """
    in_ch = ENCODER_CHANNELS[size] // divisor
    layers: list[nn.Module] = [ConvLayer(3, in_ch, 1)]
    for i in range(size.bit_length() - 1, 2, -1):
        out_ch = ENCODER_CHANNELS[2 ** (i - 1)] // divisor
        layers.append(ResBlock(in_ch, out_ch))
        in_ch = out_ch
    return layers, in_ch


class EncoderApp(nn.Module):
    """(B, 3, size, size) in [-1, 1] -> (h (B, dim), feats coarse to fine).

    feats for size 256: [(B,512,8,8), (B,512,16,16), (B,512,32,32), (B,256,64,64), (B,128,128,128),
    (B,64,256,256)], index L matching decoder level L.
    """

    def __init__(self, size: int = 256, dim: int = 512, divisor: int = 1):
        super().__init__()
        convs, in_ch = residual_tower(size, divisor)
        convs.append(EqualConv2d(in_ch, dim, 4, padding=0, bias=False))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs = []
        for conv in self.convs:
            x = conv(x)
            outs.append(x)
        return outs[-1].squeeze(-1).squeeze(-1), outs[::-1][2:]


class Encoder(nn.Module):
    """Wrapper whose only child `net_app` carries the checkpoint keys `enc.net_app.*`."""

    def __init__(self, size: int = 256, dim: int = 512, divisor: int = 1):
        super().__init__()
        self.net_app = EncoderApp(size, dim, divisor)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.net_app(x)
