"""GFPGAN v1 "clean" face restorer (the architecture of the released GFPGANv1.3.pth / GFPGANv1.4.pth).

A U-Net reads the degraded, aligned 512x512 face and produces (a) one W-space style vector per
decoder layer and (b) a pyramid of spatial scale/shift maps; a StyleGAN2 generator in its
"clean" form (plain PyTorch ops, no equalised learning rate, no blur kernels, bilinear
resampling) then synthesises the face from those style vectors, its features modulated by the
maps (SFT, on the second half of the channels).

Module and parameter names are the checkpoint schema of the released files' `params_ema` state
dict (285 tensors, in the same order): do not rename them. Only the released configuration is
built (`channel_multiplier=2`, `different_w=True`, `input_is_latent=True`, `sft_half=True`,
`narrow=1`). The decoder's style MLP and the U-Net's `toRGB` side outputs are part of the
schema but not of the restoration path (they run only on request).

Every activation is LeakyReLU(0.2) without gain; every resampling is bilinear x2 or x0.5 with
`align_corners=False`.

Parity (tests/test_gfpgan.py, fixture tests/fixtures/gfpgan/gfpgan_ref.npz: the official
GFPGANv1Clean on the seed-1 synthetic weights, float32 CPU, `randomize_noise=False`), measured
with torch 2.13 on 2 CPU threads: max abs difference of the output image 1.5e-6 (values up to
1.10), of every stored intermediate (encoder, style codes, SFT maps, decoder levels) at most
6e-7; the tolerance is 1e-4 (the official code's own 1-vs-2-thread difference is 1.2e-6).
After the official uint8 conversion, 24 of 786,432 values differ by 1 (rounding boundaries).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import inplace_ok

SQRT2 = 2**0.5
SLOPE = 0.2  # LeakyReLU negative slope, everywhere


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu_(x, SLOPE) if inplace_ok(x) else F.leaky_relu(x, SLOPE)


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize by `factor` (2 or 0.5): (B, C, H, W) -> (B, C, H*factor, W*factor)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def unet_channels(out_size: int = 512) -> dict[int, int]:
    """U-Net width per resolution: 256 up to 64 px, then halving (128 -> 128, 256 -> 64, 512 -> 32)."""
    log_size = round(math.log2(out_size))
    return {2**i: min(256, 2 ** (14 - i)) for i in range(2, log_size + 1)}


def decoder_channels(out_size: int = 512) -> dict[int, int]:
    """StyleGAN2 width per resolution (channel_multiplier=2): twice the U-Net's, 512 from 4 px to 64 px."""
    return {r: 2 * c for r, c in unet_channels(out_size).items()}


# --------------------------------------------------------------------------------------------
# U-Net
# --------------------------------------------------------------------------------------------


class ResampleBlock(nn.Module):
    """Residual block that halves or doubles the resolution: (B, Cin, H, W) -> (B, Cout, H*f, W*f).

    Main path: 3x3 conv (Cin -> Cin) + LeakyReLU, resize, 3x3 conv (Cin -> Cout) + LeakyReLU.
    Shortcut: resize, 1x1 conv (Cin -> Cout, no bias). Output: their sum.
    """

    def __init__(self, in_ch: int, out_ch: int, factor: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _leaky(self.conv2(_resize(_leaky(self.conv1(x)), self.factor)))
        shortcut = self.skip(_resize(x, self.factor))
        return out.add_(shortcut) if inplace_ok(out) else out + shortcut


def _sft_branch(channels: int) -> nn.Sequential:
    """Scale or shift map of one level: 3x3 conv + LeakyReLU + 3x3 conv, (B, C, H, W) -> same.
    Indices 0 and 2 are checkpoint keys."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.LeakyReLU(SLOPE, inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
    )


# --------------------------------------------------------------------------------------------
# StyleGAN2 "clean" decoder
# --------------------------------------------------------------------------------------------


class PixelNorm(nn.Module):
    """Normalise each style code to unit mean square: (B, D) -> (B, D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution, optionally demodulated, optionally on a x2 bilinear upsampling.

    forward(x (B, Cin, H, W), style (B, style_dim)) -> (B, Cout, H or 2H, W or 2W).

    `weight` (1, Cout, Cin, k, k) is used as stored (no run-time scaling); `modulation`
    (Linear style_dim -> Cin) gives each sample one scale per input channel. With
    demodulation each output channel's modulated kernel is normalised to unit L2 norm
    (eps 1e-8). Computed as: scale the input channels, one shared convolution, scale the output
    channels (the same value as a per-sample kernel, without building one per sample).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int = 512,
        demodulate: bool = True,
        upsample: bool = False,
    ):
        super().__init__()
        fan_in = in_ch * kernel_size**2
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size) / math.sqrt(fan_in))
        self.modulation = nn.Linear(style_dim, in_ch)
        nn.init.ones_(self.modulation.bias)
        self.demodulate = demodulate
        self.upsample = upsample
        self.padding = kernel_size // 2
        self.eps = 1e-8

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)  # (B, Cin)
        kernel = self.weight[0]  # (Cout, Cin, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            x = _resize(x, 2)
        out = F.conv2d(x, kernel, padding=self.padding)
        if self.demodulate:
            # sum over (Cin, k, k) of (kernel * s)^2, per sample and output channel: (B, Cout)
            norm2 = s.square() @ kernel.square().sum(dim=(2, 3)).t()
            demod = torch.rsqrt(norm2 + self.eps)[:, :, None, None]
            out = out.mul_(demod) if inplace_ok(out) else out * demod
        return out


class StyleConv(nn.Module):
    """Modulated 3x3 conv x sqrt(2) + noise strength x noise map + per-channel bias, LeakyReLU.

    forward(x (B, Cin, H, W), style (B, style_dim), noise (B or 1, 1, H', W') or None)
    -> (B, Cout, H', W'), H' = 2H when upsampling. noise=None draws a fresh N(0, 1) map per sample.
    `weight` (1,) is the noise strength, `bias` (1, Cout, 1, 1).
    """

    def __init__(self, in_ch: int, out_ch: int, style_dim: int = 512, upsample: bool = False):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, demodulate=True, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        out = self.modulated_conv(x, style)
        b, _, h, w = out.shape
        if noise is None:
            noise = torch.randn(b, 1, h, w, generator=generator, device=out.device, dtype=out.dtype)
        if inplace_ok(out):
            return F.leaky_relu_(out.mul_(SQRT2).add_(self.weight * noise).add_(self.bias), SLOPE)
        return F.leaky_relu(out * SQRT2 + self.weight * noise + self.bias, SLOPE)


class ToRGB(nn.Module):
    """1x1 modulated conv (not demodulated) to RGB + bias, plus the x2-resized previous RGB skip.

    forward(x (B, C, H, W), style (B, style_dim), skip (B, 3, H/2, W/2) or None) -> (B, 3, H, W).
    """

    def __init__(self, in_ch: int, style_dim: int = 512):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + _resize(skip, 2)
        return out


class ConstantInput(nn.Module):
    """The learned 4x4 starting map, `weight` (1, C, 4, 4); forward(batch) -> (batch, C, 4, 4)."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class StyleGAN2CleanSFT(nn.Module):
    """StyleGAN2 "clean" generator whose features are modulated by spatial scale/shift maps.

    forward(latents (B, L, style_dim), conditions [(scale_k, shift_k) per level k, each
    (B, C_k/2, 8*2^k, 8*2^k)], noise list of L-1 maps or None) -> image (B, 3, out_size, out_size).
    L = 2*log2(out_size) - 2 latents (16 at 512 px); the noise maps are `noises.noise{i}`
    (1, 1, R, R) buffers, R = 4, 8, 8, 16, 16, ..., out_size, out_size.
    """

    def __init__(self, out_size: int = 512, style_dim: int = 512, num_mlp: int = 8):
        super().__init__()
        ch = decoder_channels(out_size)
        self.log_size = round(math.log2(out_size))
        self.num_latent = 2 * self.log_size - 2
        mlp: list[nn.Module] = [PixelNorm()]
        for _ in range(num_mlp):
            mlp += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(SLOPE, inplace=True)]
        self.style_mlp = nn.Sequential(*mlp)  # z -> w; unused by GFPGAN (its latents are already w)
        self.constant_input = ConstantInput(ch[4])
        self.style_conv1 = StyleConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2**i]
            self.style_convs.append(StyleConv(in_ch, out_ch, style_dim, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch
        self.noises = nn.Module()
        for i in range(2 * self.log_size - 3):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))

    def stored_noise(self) -> list[torch.Tensor]:
        """The 15 stored noise maps, in the order of the style convs."""
        return [getattr(self.noises, f"noise{i}") for i in range(2 * self.log_size - 3)]

    def forward(
        self,
        latents: torch.Tensor,
        conditions: list[tuple[torch.Tensor, torch.Tensor]],
        noise: list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        noise = noise if noise is not None else [None] * (2 * self.log_size - 3)
        out = self.style_conv1(self.constant_input(latents.shape[0]), latents[:, 0], noise[0], generator)
        skip = self.to_rgb1(out, latents[:, 1])
        for k, to_rgb in enumerate(self.to_rgbs):
            i = 2 * k + 1
            out = self.style_convs[2 * k](out, latents[:, i], noise[i], generator)
            if k < len(conditions):  # SFT on the second half of the channels
                scale, shift = conditions[k]
                half = out.shape[1] // 2
                if inplace_ok(out):
                    out[:, half:].mul_(scale).add_(shift)
                else:
                    out = torch.cat([out[:, :half], out[:, half:] * scale + shift], dim=1)
            out = self.style_convs[2 * k + 1](out, latents[:, i + 1], noise[i + 1], generator)
            skip = to_rgb(out, latents[:, i + 2], skip)
        return skip


# --------------------------------------------------------------------------------------------
# The restorer
# --------------------------------------------------------------------------------------------


class GFPGANv1Clean(nn.Module):
    """GFPGAN v1.3/v1.4: aligned degraded face (B, 3, 512, 512) in [-1, 1], RGB -> restored face.

    forward(x, randomize_noise=False, return_rgb=False, generator=None) -> image
    (B, 3, 512, 512), nominally in [-1, 1] but not clamped (as the official network; use
    :meth:`restore` for the clamped image). randomize_noise=False uses the stored noise buffers
    (deterministic: the same input gives the same output, so video frames do not flicker);
    True draws fresh N(0, 1) maps on every call (the official `GFPGANer` default) from
    `generator` or torch's global RNG. return_rgb=True returns (image, side_rgbs), the U-Net's
    seven training-time side images (B, 3, 8*2^k, 8*2^k).
    """

    def __init__(self, out_size: int = 512, style_dim: int = 512, num_mlp: int = 8):
        super().__init__()
        ch = unet_channels(out_size)
        log_size = round(math.log2(out_size))
        self.style_dim = style_dim
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList()
        for i in range(log_size, 2, -1):
            self.conv_body_down.append(ResampleBlock(ch[2**i], ch[2 ** (i - 1)], 0.5))
        self.final_conv = nn.Conv2d(ch[4], ch[4], 3, padding=1)
        self.conv_body_up = nn.ModuleList()
        self.toRGB = nn.ModuleList()
        for i in range(3, log_size + 1):
            self.conv_body_up.append(ResampleBlock(ch[2 ** (i - 1)], ch[2**i], 2))
            self.toRGB.append(nn.Conv2d(ch[2**i], 3, 1))
        num_latent = 2 * log_size - 2
        self.final_linear = nn.Linear(ch[4] * 4 * 4, style_dim * num_latent)
        self.stylegan_decoder = StyleGAN2CleanSFT(out_size, style_dim, num_mlp)
        self.condition_scale = nn.ModuleList(_sft_branch(ch[2**i]) for i in range(3, log_size + 1))
        self.condition_shift = nn.ModuleList(_sft_branch(ch[2**i]) for i in range(3, log_size + 1))

    def encode(self, x: torch.Tensor, return_rgb: bool = False):
        """U-Net pass: x (B, 3, S, S) -> (latents (B, 16, style_dim), [(scale_k, shift_k)] * 7, side_rgbs)."""
        feat = _leaky(self.conv_body_first(x))
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = _leaky(self.final_conv(feat))
        latents = self.final_linear(feat.flatten(1)).view(x.shape[0], -1, self.style_dim)
        conditions, rgbs = [], []
        for k, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[-1 - k])
            conditions.append((self.condition_scale[k](feat), self.condition_shift[k](feat)))
            if return_rgb:
                rgbs.append(self.toRGB[k](feat))
        return latents, conditions, rgbs

    def forward(
        self,
        x: torch.Tensor,
        randomize_noise: bool = False,
        return_rgb: bool = False,
        generator: torch.Generator | None = None,
    ):
        latents, conditions, rgbs = self.encode(x, return_rgb)
        noise = None if randomize_noise else self.stylegan_decoder.stored_noise()
        image = self.stylegan_decoder(latents, conditions, noise, generator)
        return (image, rgbs) if return_rgb else image

    @torch.no_grad()
    def restore(self, x: torch.Tensor, randomize_noise: bool = False) -> torch.Tensor:
        """Restored faces clamped to [-1, 1] (the official post-processing): (B, 3, S, S) -> same."""
        return self(x, randomize_noise=randomize_noise).clamp_(-1.0, 1.0)
