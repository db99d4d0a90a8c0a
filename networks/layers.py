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
    dtype) or `tag` changes (e.g. the dtype the value is wanted in). While autograd records, or
    torch.compile traces, it is recomputed on every call (so gradients flow through it, and a
    compiled graph holds the computation instead)."""

    def __init__(self):
        self._key = None
        self._value = None

    def get(self, params: Sequence[torch.Tensor], compute, tag=None):
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return compute()
        key = (tag, *((t.data_ptr(), t._version, t.device, t.dtype) for t in params))
        if key != self._key:
            self._key, self._value = key, compute()
        return self._value


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution or matmul of `x` runs in: the autocast dtype while autocast is on for
    x's device type, else x's own dtype."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) in the channels_last layout on CPUs and CUDA GPUs (as it is on MPS)."""
    if x.device.type in ("cpu", "cuda"):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def conv_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A convolution weight (Cout, Cin, k, k) in the dtype it will be used in (so autocast does not
    cast it again on every call) and channels_last: a convolution with a channels_last weight
    produces channels_last outputs, the layout oneDNN and cuDNN run fastest, so the network keeps
    that layout without conversions (images enter it channels_last too: `channels_last`)."""
    return channels_last(weight.to(dtype))


def same_layout(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`x` in the memory layout of `like` (channels_last or contiguous): elementwise operations on
    tensors of different layouts are several times slower than on tensors of one layout."""
    last = like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous()
    return x.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)


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

    x: (B, C, H, W); kernel: (k, k); the same `up`, `down` and `pad` = (before, after) on both axes,
    with pad[0] < k when up > 1. Returns (B, C, H', W') with H' = (H*up + pad[0] + pad[1] - k + 1)
    // down (rounded up). Computed in x's dtype even under autocast (a 3-channel image stays float32).
    """
    with torch.autocast(x.device.type, enabled=False):
        return _upfirdn2d(x, kernel, up, down, pad)


def _upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, pad: tuple) -> torch.Tensor:
    b, c, h, w = x.shape
    if up > 1:
        # Zero-stuffing then a true convolution is the transposed convolution with the kernel, which
        # skips the zeros: output p is its output p + k - 1 - pad[0] (zero past its end).
        size = kernel.shape[0]
        weight = kernel.to(x.dtype)[None, None].expand(c, 1, size, size)
        first, n_h, n_w = size - 1 - pad[0], h * up + sum(pad) - size + 1, w * up + sum(pad) - size + 1
        out = F.conv_transpose2d(x, weight, stride=up, groups=c)[..., first : first + n_h, first : first + n_w]
        if out.shape[2:] != (n_h, n_w):
            out = F.pad(out, [0, n_w - out.shape[3], 0, n_h - out.shape[2]])
        return out[..., ::down, ::down] if down > 1 else out
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
        dtype = compute_dtype(x)
        weight = self._scaled.get([self.weight], lambda: conv_weight(self.weight * self.scale, dtype), dtype)
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
        self._scaled = ParameterCache()

    def _prepare(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scale * weight, lr_mul * bias or None), in `dtype`."""
        bias = (self.bias * self.lr_mul).to(dtype) if self.bias is not None else None
        return (self.weight * self.scale).to(dtype), bias

    def forward(self, x):
        dtype = compute_dtype(x)
        params = [self.weight] if self.bias is None else [self.weight, self.bias]
        weight, bias = self._scaled.get(params, lambda: self._prepare(dtype), dtype)
        if self.activation:
            out = F.linear(x, weight)
            return F.leaky_relu(out + bias, 0.2) * SQRT2
        return F.linear(x, weight, bias=bias)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias, leaky ReLU (0.2), then a sqrt(2) gain. `bias` is (1, C, 1, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        out = x + self.bias.to(x.dtype)  # (a bf16 x stays bf16)
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


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """Sub-pixel form of a stride-2 transposed convolution with `weight` (Cout, Cin, k, k), i.e. of
    conv_transpose2d(x, weight.transpose(0, 1), stride=2) with output (B, Cout, 2H + k - 2, 2W + k - 2).

    Output pixel (2i + a, 2j + b) only sees the kernel taps of parity (a, b), so the transposed
    convolution is four ordinary convolutions of x with n x n sub-kernels (n = ceil(k / 2)),
    interleaved: pixel_shuffle(conv2d(x, subpixel_weight(weight), padding=n - 1), 2) equals it,
    followed by 2n - k zero rows and columns. Returns (4 Cout, Cin, n, n), channel c * 4 + a * 2 + b
    holding phase (a, b) of output channel c (pixel_shuffle's order).
    """
    cout, cin, k, _ = weight.shape
    n = (k + 1) // 2
    taps = F.pad(weight, [0, 2 * n - k, 0, 2 * n - k])  # (Cout, Cin, 2n, 2n), tap t = 2q + a
    # phase a, position j of the sub-kernel reads input pixel i + j - (n - 1) with tap a + 2(n - 1 - j)
    phases = taps.reshape(cout, cin, n, 2, n, 2).flip(2, 4)  # (Cout, Cin, j, a, l, b)
    return phases.permute(0, 3, 5, 1, 2, 4).reshape(cout * 4, cin, n, n)


# Upsampling convolutions of inputs from SUBPIXEL_MIN_SIZE up run as sub-pixel convolutions in these
# dtypes (oneDNN bf16 with AMX: 1.2-1.7x faster than its transposed convolution at each decoder shape
# from 8x8 up; at 4x4 the 16/9 larger weight costs more than it saves) and as transposed convolutions
# in float32 (where oneDNN's transposed convolution is the faster one at every decoder shape).
SUBPIXEL_DTYPES = (torch.bfloat16, torch.float16)
SUBPIXEL_MIN_SIZE = 8


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution with optional demodulation and x2 transposed-conv upsampling.

    forward(x (B, Cin, H, W), style (B, style_dim)) -> (B, Cout, H or 2H, W or 2W). Each sample
    gets its own weights w * s (modulation) scaled per output channel (demodulation). The
    upsampling convolution runs in its sub-pixel form (`subpixel_weight`) in SUBPIXEL_DTYPES.
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

    def _prepare(self, dtype: torch.dtype, subpixel: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(the convolution weight in `dtype`: scale * w as (Cout, Cin, k, k), or for upsampling its
        sub-pixel form (4 Cout, Cin, n, n) or its transpose (Cin, Cout, k, k); sum over (k, k) of
        (scale * w)^2 as (Cin, Cout), float32, for the demodulation)."""
        weight = self.scale * self.weight[0]
        squares = weight.pow(2).sum([2, 3]).t()
        if self.upsample:
            weight = subpixel_weight(weight) if subpixel else weight.transpose(0, 1)
        return conv_weight(weight, dtype), squares

    def forward(self, x, style, act_bias=None):
        """act_bias: the (1, Cout, 1, 1) bias of a FusedLeakyReLU that follows, fused in (one pass
        over the output instead of four): returns leaky_relu(out + act_bias, 0.2) * sqrt(2)."""
        # Computed as gain * conv(x * s, scale * w), gain = demod (* sqrt(2) with the activation:
        # leaky_relu(y) * sqrt(2) = leaky_relu(sqrt(2) y)): the same result as convolving each sample
        # with its own weights scale * w * s * demod (the official grouped convolution), but with
        # one weight shared by the batch. A single sample whose input is larger than the weight
        # instead gets that weight (one small tensor scaled instead of the input and the output).
        s = self.modulation(style)  # (B, Cin)
        dtype = compute_dtype(x)
        subpixel = self.upsample and dtype in SUBPIXEL_DTYPES and x.shape[-1] >= SUBPIXEL_MIN_SIZE
        weight, squares = self._prepared.get([self.weight], lambda: self._prepare(dtype, subpixel), (dtype, subpixel))
        gain = None  # (B, Cout or 1)
        if self.demodulate:
            # sum over (Cin, k, k) of (scale * w * s)^2 = (s^2) @ squares
            gain = torch.rsqrt(s.pow(2) @ squares + 1e-8)
        if act_bias is not None:
            gain = torch.full_like(s[:, :1], SQRT2) if gain is None else gain * SQRT2
            act_bias = (act_bias * SQRT2).to(dtype)
        conv_bias = None
        if x.shape[0] == 1 and weight.numel() < x.numel():
            weight = self._per_sample_weight(weight, s, gain, subpixel)
            gain = None
            if not self.upsample and act_bias is not None:
                conv_bias, act_bias = act_bias.flatten(), None
        else:
            x = x * s[:, :, None, None]
        if subpixel:
            out = F.pixel_shuffle(F.conv2d(x, weight, padding=weight.shape[-1] - 1), 2)
        elif self.upsample:
            out = F.conv_transpose2d(x, weight, padding=0, stride=2)
        else:
            out = F.conv2d(x, weight, bias=conv_bias, padding=self.padding)
        if self.upsample:  # the blur commutes with the per-channel gain and bias
            out = self.blur(out)
            excess = 2 * weight.shape[-1] - self.kernel_size if subpixel else 0  # the sub-pixel form's zero rows
            out = out[..., : out.shape[2] - excess, : out.shape[3] - excess]
        if gain is not None:
            gain = gain[:, :, None, None].to(out.dtype)
            if act_bias is not None:
                out = torch.addcmul(act_bias, out, gain)
            else:
                out = out.mul_(gain) if inplace_ok(out) else out * gain
        elif act_bias is not None:
            out = out.add_(act_bias) if inplace_ok(out) else out + act_bias
        if conv_bias is None and act_bias is None:
            return out
        return F.leaky_relu_(out, 0.2) if inplace_ok(out) else F.leaky_relu(out, 0.2)

    def _per_sample_weight(
        self, weight: torch.Tensor, s: torch.Tensor, gain: torch.Tensor | None, subpixel: bool
    ) -> torch.Tensor:
        """The convolution weight (in any of its three forms) times s (1, Cin) per input channel and
        gain (1, Cout or 1) per output channel, computed in float32, in weight's dtype and layout."""
        cin_dim = 0 if self.upsample and not subpixel else 1  # the transposed form is (Cin, Cout, k, k)
        scaled = weight.float() * s[0].float().reshape([-1 if d == cin_dim else 1 for d in range(4)])
        if gain is not None:
            g = gain[0].float().repeat_interleave(4 if subpixel and gain.shape[1] > 1 else 1)
            scaled = scaled * g.reshape([-1 if d == 1 - cin_dim else 1 for d in range(4)])
        return scaled.to(weight.dtype)


class NoiseInjection(nn.Module):
    """Adds weight * noise when noise is given. EDTalk never passes noise: identity in practice."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise=None):
        return x if noise is None else x + self.weight * noise


class StyledConv(nn.Module):
    """Modulated conv (demodulated) + NoiseInjection (identity: EDTalk passes no noise) + fused
    leaky ReLU, the activation computed inside the convolution's last pass (`act_bias`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x, style):
        return self.conv(x, style, act_bias=self.activate.bias)


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
        # The 3-channel image is accumulated in float32 whatever the precision of the features.
        out = self.conv(x).float() + self.bias
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
        # Flow, mask and warp are computed in float32 whatever the precision of the features (a
        # bf16 grid would place samples up to half a pixel off); the blend is returned in x's dtype.
        out = self.conv(x, style).float() + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        b, _, h, _ = x.shape
        # The base grid is the align_corners=True identity while sampling uses align_corners=False,
        # exactly as the official code: a zero offset is not an identity warp.
        grid = torch.tanh(out[:, 0:2]).permute(0, 2, 3, 1) + identity_grid(h, b, x.device, out.dtype)
        mask = torch.sigmoid(out[:, 2:3])
        if feat.shape[0] != b:
            feat = feat.expand(b, -1, -1, -1)
        warped = F.grid_sample(feat.to(out.dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # to x's dtype and layout (grid_sample returns a contiguous tensor) in one copy, so that the
        # blend runs on tensors of one dtype and layout (mixed ones take a slow path on CPUs)
        warped = same_layout(warped.to(x.dtype), x)
        mask = mask.to(x.dtype)
        if not inplace_ok(warped):
            warped = warped * mask
            return warped, warped + x * (1 - mask), out
        warped.mul_(mask)
        return warped, torch.addcmul(warped, x, mask.neg_().add_(1)), out
