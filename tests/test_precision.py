"""Precision `auto` and the reduced-precision kernels: bf16 where the hardware has it, exact rewrites,
and a bf16 render that stays close to fp32."""

import math

import pytest
import torch
import torch.nn.functional as F

import edtalk
from edtalk import device as device_mod
from edtalk.device import exact_fp32, native_bf16, precision_name, resolve_precision
from networks.layers import ModulatedConv2d, subpixel_weight, upfirdn2d

from .conftest import load_fixture

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"fpu", "avx512f", "amx_tile", "amx_bf16"}, torch.bfloat16),  # Intel Sapphire Rapids and later
        ({"fpu", "avx512f", "avx512_bf16"}, torch.bfloat16),  # AMD Zen 4 and later
        ({"fpu", "avx2", "fma"}, torch.float32),  # AVX2 only
        ({"fpu", "avx512f"}, torch.float32),  # AVX-512 without bf16
        (set(), torch.float32),  # flags unknown (not Linux)
    ],
)
def test_auto_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: flags)
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == torch.float32  # explicit choices are kept
    assert resolve_precision("bf16", CPU) == torch.bfloat16


@pytest.mark.parametrize(
    "capability, expected",
    [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16), ((7, 5), torch.float32)],
)
def test_auto_follows_the_cuda_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert native_bf16(torch.device("cuda")) == (expected == torch.bfloat16)
    assert resolve_precision("auto", torch.device("cuda")) == expected


def test_auto_is_fp32_on_mps_and_bad_names_are_refused():
    assert resolve_precision("auto", torch.device("mps")) == torch.float32
    with pytest.raises(edtalk.EDTalkError, match="precision must be one of auto, fp32, bf16, fp16"):
        resolve_precision("int8", CPU)
    with pytest.raises(edtalk.EDTalkError, match="fp16 needs a GPU"):
        resolve_precision("fp16", CPU)
    assert [precision_name(resolve_precision(n, CPU)) for n in ("fp32", "bf16")] == ["fp32", "bf16"]


def test_fp32_on_cuda_turns_tf32_off_for_the_block_only():
    """--precision fp32 is exact on GPUs too: cuDNN / cuBLAS TF32 is off inside, restored after
    (the flags are plain settings, so this runs without a GPU)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with exact_fp32(torch.device("cuda")):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with exact_fp32(torch.device("cpu")):
            assert torch.backends.cudnn.allow_tf32  # nothing to do off CUDA
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("kernel_size", [1, 3, 4])
@pytest.mark.parametrize("size", [(5, 5), (6, 7), (8, 8)])
def test_subpixel_form_equals_the_transposed_convolution(kernel_size, size):
    gen = torch.Generator().manual_seed(kernel_size * 100 + size[0] * 10 + size[1])
    x = torch.randn(2, 8, *size, generator=gen)
    weight = torch.randn(6, 8, kernel_size, kernel_size, generator=gen)  # (Cout, Cin, k, k)
    expected = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    sub = subpixel_weight(weight)
    n = sub.shape[-1]
    out = F.pixel_shuffle(F.conv2d(x, sub, padding=n - 1), 2)
    h, w = expected.shape[2:]
    torch.testing.assert_close(out[..., :h, :w], expected, atol=1e-5, rtol=0)
    assert torch.count_nonzero(out[..., h:, :]) == torch.count_nonzero(out[..., w:]) == 0  # 2n - k zero rows


@pytest.mark.parametrize("size", [8, 9])
def test_upsampling_layer_agrees_in_both_forms(size):
    """The decoder's upsampling layer in fp32 (transposed convolution) and in its sub-pixel form
    (the path bf16 takes), both computed in fp32, give the same output."""
    torch.manual_seed(size)
    layer = ModulatedConv2d(16, 8, 3, 32, upsample=True)
    x, style = torch.randn(2, 16, size, size), torch.randn(2, 32)
    bias = torch.randn(1, 8, 1, 1)
    transposed = layer(x, style, act_bias=bias)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("networks.layers.SUBPIXEL_DTYPES", (torch.float32,))
        subpixel = layer(x, style, act_bias=bias)
    assert subpixel.shape == transposed.shape == (2, 8, 2 * size, 2 * size)
    torch.testing.assert_close(subpixel, transposed, atol=1e-5, rtol=0)


@pytest.mark.parametrize("upsample, subpixel", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("demodulate, activation", [(True, True), (True, False), (False, False)])
def test_one_sample_with_its_own_weights_equals_the_batched_path(upsample, subpixel, demodulate, activation):
    """A single sample whose input is larger than the weight is convolved with its own modulated
    weight; it must equal the same sample computed in a batch (input modulated instead)."""
    torch.manual_seed(3)
    layer = ModulatedConv2d(8, 4, 3, 16, demodulate=demodulate, upsample=upsample)
    x, style = torch.randn(1, 8, 16, 16), torch.randn(1, 16)
    assert layer.weight.numel() < x.numel()
    bias = torch.randn(1, 4, 1, 1) if activation else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("networks.layers.SUBPIXEL_DTYPES", (torch.float32,) if subpixel else ())
        single = layer(x, style, act_bias=bias)
        batched = layer(x.expand(2, -1, -1, -1), style.expand(2, -1), act_bias=bias)
    torch.testing.assert_close(single[0], batched[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1], batched[0], atol=0, rtol=0)


@pytest.mark.parametrize("pad", [(2, 1), (1, 1), (3, 3), (0, 2)])
@pytest.mark.parametrize("down", [1, 2])
def test_upfirdn2d_upsampling_equals_zero_stuffing(pad, down):
    """upfirdn2d upsamples with a transposed convolution; the definition zero-stuffs, pads and
    convolves (true convolution)."""
    torch.manual_seed(4)
    x, kernel = torch.randn(2, 3, 7, 6), torch.rand(4, 4)
    stuffed = torch.zeros(2, 3, 14, 12)
    stuffed[..., ::2, ::2] = x
    padded = F.pad(stuffed, [pad[0], pad[1], pad[0], pad[1]])
    expected = F.conv2d(padded, torch.flip(kernel, [0, 1]).expand(3, 1, 4, 4), groups=3, stride=down)
    torch.testing.assert_close(upfirdn2d(x, kernel, up=2, down=down, pad=pad), expected, atol=1e-5, rtol=0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [-1, 1] image batches quantised to 8 bits, as the pipeline writes them."""
    to8 = lambda t: ((t.float().clamp(-1, 1) + 1) * 127.5).round()  # noqa: E731
    mse = torch.mean((to8(a) - to8(b)) ** 2).item()
    return 10 * math.log10(255**2 / mse) if mse else math.inf


@pytest.mark.parametrize("name", ["EDTalk.pt", "EDTalk_lip_pose.pt"])
def test_bf16_render_stays_close_to_fp32(synthetic_ckpts, name):
    """bf16 autocast (what `auto` runs on CPUs with AMX / AVX512-BF16) renders the parity clip's
    first frame at >= 45 dB PSNR against fp32 with the synthetic weights (one frame: a CPU without
    native bf16 emulates it, slowly)."""
    ref = load_fixture("gen_edtalk_test_EDTalk_A.npz")
    gen = edtalk.load_generator(synthetic_ckpts / name)
    drivers = (ref["lip_coef"][:1], ref["pose_frames"][:1], ref["exp_frames"][:1] if gen.has_expression else None)
    fp32 = gen.animate(ref["source"], *drivers)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = gen.animate(ref["source"], *drivers)
    assert bf16.shape == fp32.shape
    assert psnr(bf16, fp32) >= 45
