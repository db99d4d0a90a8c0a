"""StyleGAN2 / LIA discriminator (the `dis` entry of training checkpoints).

forward(images (B, 3, 256, 256) in [-1, 1]) -> (B, 1) logits. Key names follow the official
training checkpoints: `convs.0.0.weight`, `convs.k.conv1.0.weight`, ..., `final_conv.0.weight`,
`final_linear.0.weight`.
"""

import torch
from torch import nn

from .encoder import residual_tower
from .layers import ConvLayer, EqualLinear


class Discriminator(nn.Module):
    def __init__(self, size: int = 256, stddev_group: int = 4, divisor: int = 1):
        super().__init__()
        convs, in_ch = residual_tower(size, divisor)
        self.convs = nn.Sequential(*convs)
        self.stddev_group = stddev_group
        self.final_conv = ConvLayer(in_ch + 1, in_ch, 3)
        self.final_linear = nn.Sequential(
            EqualLinear(in_ch * 4 * 4, in_ch, activation="fused_lrelu"),
            EqualLinear(in_ch, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.convs(images)  # (B, 512 / divisor, 4, 4)
        b, c, h, w = out.shape
        # Minibatch standard deviation: one extra channel telling how varied the group is.
        group = min(b, self.stddev_group)
        while b % group:
            group -= 1
        std = out.reshape(group, b // group, 1, c, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, std.repeat(group, 1, h, w)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.reshape(b, -1))
