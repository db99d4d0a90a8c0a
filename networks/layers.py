"""StyleGAN2/LIA building blocks shared by the EDTalk encoder, decoder and discriminator.

These follow the "native" (pure PyTorch) StyleGAN2 layers that LIA and EDTalk use. Parameter
and buffer names are part of the official checkpoint schema: do not rename them.

Equalised learning rate: weights are stored un-scaled and multiplied by a constant at run time.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = 2**0.5


class ParameterCache:
    """A value derived from parameters (a scaled weight, a QR basis), computed once and reused at
    inference until one of the parameters changes (in place, or moved to another device or
    dtype). While autograd records, or torch.compile traces, it is recomputed on every call (so
    gradients flow through it, and a compiled graph holds the computation instead)."""

    def __init__(self):
        self._key = None
        self._value = None

    def get(self, params: Sequence[torch.Tensor], compute):
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return compute()
        key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in params)
        if key != self._key:
            self._key, self._value = key, compute()
        return self._value


def inplace_ok(x: torch.Tensor) -> bool:
    """True when `x` may be overwritten (autograd is not recording): inference saves the copies."""
    return not (torch.is_grad_enabled() and x.requires_grad)


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Separable blur kernel: outer product of `taps` with itself, normalised to sum 1. (k, k)."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple = (0, 0)) -> torch.Tensor:
    """Upsample by zero-stuffing, pad, convolve with `kernel` (true convolution), downsample.

    x: (B, C, H, W); kernel: (k, k); the same `up`, `down` and `pad` = (before, after) on both axes.
    Returns (B, C, H', W') with H' = (H*up + pad[0] + pad[1] - k + 1) // down (rounded up).
    """
    b, c, h, w = x.shape
    if up > 1:
        stuffed = x.new_zeros(b, c, h, up, w, up)
        stuffed[:, :, :, 0, :, 0] = x
        x = stuffed.reshape(b, c, h * up, w * up)
    k = torch.flip(kernel, [0, 1]).to(x.dtype)
    weight = k[None, None].expand(c, 1, *k.shape)
    if pad[0] == pad[1]:  # symmetric: let the convolution pad (no padded copy)
        return F.conv2d(x, weight, groups=c, padding=pad[0], stride=down)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, weight, groups=c, stride=down)


class Blur(nn.Module):
    """Low-pass filter with padding; `kernel` buffer sums to upsample_factor**2."""

    def __init__(self, kernel: Sequence[float], pad: tuple, upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 upsampling by zero-stuffing and blurring: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (weight scaled by 1/sqrt(fan_in) at run time)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self._scaled = ParameterCache()

    def forward(self, x):
        weight = self._scaled.get([self.weight], lambda: self.weight * self.scale)
        return F.conv2d(x, weight, bias=self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate; optional fused leaky ReLU (discriminator only)."""

    def __init__(
        self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0, activation=None
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x):
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + bias, 0.2) * SQRT2
        return F.linear(x, self.weight * self.scale, bias=bias)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias, leaky ReLU (0.2), then a sqrt(2) gain. `bias` is (1, C, 1, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        out = x + self.bias
        if inplace_ok(out):  # same values, two fewer full-size temporaries
            return F.leaky_relu_(out, 0.2).mul_(SQRT2)
        return F.leaky_relu(out, 0.2) * SQRT2


class ConvLayer(nn.Sequential):
    """[Blur] + EqualConv2d + [FusedLeakyReLU]; the submodule indices are checkpoint keys."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
    ):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias and not activate)
        )
        if activate and bias:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual downsampling block: (B, Cin, H, W) -> (B, Cout, H/2, W/2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, activate=False, bias=False)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        if inplace_ok(out):
            return out.add_(self.skip(x)).div_(SQRT2)
        return (out + self.skip(x)) / SQRT2


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution with optional demodulation and x2 transposed-conv upsampling.

    forward(x (B, Cin, H, W), style (B, style_dim)) -> (B, Cout, H or 2H, W or 2W). Each sample
    gets its own weights w * s (modulation) scaled per output channel (demodulation).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1)
        self._prepared = ParameterCache()

    def _prepare(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale * w as (Cout, Cin, k, k) -- transposed to (Cin, Cout, k, k) for upsampling --,
        sum over (k, k) of (scale * w)^2 as (Cin, Cout) for the demodulation)."""
        weight = self.scale * self.weight[0]
        squares = weight.pow(2).sum([2, 3]).t()
        return (weight.transpose(0, 1).contiguous() if self.upsample else weight), squares

    def forward(self, x, style):
        # Computed as demod * conv(x * s, scale * w): the same result as convolving each sample
        # with its own weights scale * w * s * demod (the official grouped convolution), but with
        # one weight shared by the batch and no per-sample weight tensors.
        s = self.modulation(style)  # (B, Cin)
        weight, squares = self._prepared.get([self.weight], self._prepare)
        x = x * s[:, :, None, None]
        if self.upsample:
            out = F.conv_transpose2d(x, weight, padding=0, stride=2)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum over (Cin, k, k) of (scale * w * s)^2 = (s^2) @ squares
            demod = torch.rsqrt(s.pow(2) @ squares + 1e-8)  # (B, Cout)
            out = out.mul_(demod[:, :, None, None]) if inplace_ok(out) else out * demod[:, :, None, None]
        return self.blur(out) if self.upsample else out


class NoiseInjection(nn.Module):
    """Adds weight * noise when noise is given. EDTalk never passes noise: identity in practice."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise=None):
        return x if noise is None else x + self.weight * noise


class StyledConv(nn.Module):
    """Modulated conv (demodulated) + NoiseInjection (identity) + fused leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x, style):
        return self.activate(self.noise(self.conv(x, style)))


class ConstantInput(nn.Module):
    """Learned constant (1, C, 4, 4), repeated to the batch size of `like`."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, like):
        return self.input.repeat(like.shape[0], 1, 1, 1)


class ToRGB(nn.Module):
    """LIA ToRGB: un-modulated 1x1 conv + fused leaky ReLU + bias, plus the upsampled skip image."""

    def __init__(self, in_ch: int, upsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ConvLayer(in_ch, 3, 1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, skip=None):
        out = self.conv(x) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


def identity_grid(size: int, batch: int, device, dtype=torch.float32) -> torch.Tensor:
    """(batch, size, size, 2) sampling grid with x = linspace(-1,1)[column], y = linspace(-1,1)[row]."""
    v = torch.linspace(-1, 1, size, dtype=torch.float64, device=device).to(dtype)
    grid = torch.stack([v[None, :].expand(size, size), v[:, None].expand(size, size)], dim=-1)
    return grid[None].expand(batch, size, size, 2)


class ToFlow(nn.Module):
    """Predicts a flow and a mask from decoder features and warps the encoder feature with them.

    forward(x (B,C,H,W) decoder features, style (B,512), feat (B,C,H,W) encoder features, skip
    (B,3,H/2,W/2) previous level's raw flow logits) -> (masked warped feat, blend with x, logits).
    """

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, feat, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        b, _, h, _ = x.shape
        # The base grid is the align_corners=True identity while sampling uses align_corners=False,
        # exactly as the official code: a zero offset is not an identity warp.
        grid = torch.tanh(out[:, 0:2]).permute(0, 2, 3, 1) + identity_grid(h, b, x.device, x.dtype)
        mask = torch.sigmoid(out[:, 2:3])
        if feat.shape[0] != b:
            feat = feat.expand(b, -1, -1, -1)
        warped = F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False) * mask
        return warped, warped + x * (1 - mask), out
