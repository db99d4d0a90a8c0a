"""The generator backends: OpenVINO matches the PyTorch fp32 generator within the parity tolerances,
pads a last partial batch instead of compiling again, reads its cache on a second start, keeps the
warp in float32 under bf16, and is what `--backend auto` picks on the CPU.

The OpenVINO models are exported once per weights and shape into a cache kept between runs
(.cache/test_openvino, like the synthetic weights): every test here uses the encoder at batch 1 and
the decoder at batch 2 against one source encoding, the shapes of the parity fixtures. The first
run exports four models; later runs only read and compile them from the cache. Measured with a
load average of ~10 on 2 cores: 15 min cold, 3.4 min warm (each test 30-50 s at that load).
"""

import logging

import numpy as np
import pytest
import torch
from tqdm import tqdm

import demo_lip_pose
import edtalk
from edtalk.backends import ENVIRONMENT, describe, make_backend, resolve_backend
from edtalk.device import native_bf16, precision_name, resolve_precision
from edtalk.errors import EDTalkError
from edtalk.inputs import Source
from edtalk.rendering import generate
from edtalk.torch_backend import TorchGenerator
from networks.generator import SourceEncoding

from .conftest import ROOT, load_fixture
from .test_demos import first_frames_clip
from .test_parity_generator import ATOL_INTERMEDIATE, ATOL_OUT, assert_close, check_source_encoding
from .test_precision import psnr

ov = pytest.importorskip("openvino", reason="openvino is not installed: the OpenVINO backend cannot run here")
from edtalk.backends import openvino as ov_backend  # noqa: E402

CPU = torch.device("cpu")
CACHE = ROOT / ".cache" / "test_openvino"
BATCH = 2  # the decoder's one batch shape in this module (the parity fixtures render 2 frames)
MIN_PSNR_DB = 45  # bf16 against fp32, 8-bit frames


def openvino_generator(ckpts, name: str, model: str, precision=torch.float32) -> ov_backend.OpenVINOGenerator:
    return ov_backend.OpenVINOGenerator(edtalk.load_generator(ckpts / name, CPU), model, precision, CACHE, BATCH)


@pytest.fixture(scope="module")
def ov_lip_pose(synthetic_ckpts):
    """The lip-pose generator on OpenVINO, its encoder and decoder exported (or read from the cache)."""
    backend = openvino_generator(synthetic_ckpts, "EDTalk_lip_pose.pt", "lip_pose")
    source = backend.encode_source(np.zeros((1, 256, 256, 3), np.uint8))
    backend.animate(source, torch.zeros(BATCH, 20), None, None)
    return backend


@pytest.fixture(scope="module")
def ov_full(synthetic_ckpts):
    return openvino_generator(synthetic_ckpts, "EDTalk.pt", "full")


def encode(backend: ov_backend.OpenVINOGenerator, images: torch.Tensor) -> SourceEncoding:
    """A SourceEncoding of float images through the backend's encoder (no uint8 rounding)."""
    wa, *feats = backend.encode_images(images.numpy())
    with torch.inference_mode():
        return SourceEncoding(wa, feats, backend.generator.dec.prepare_eem(feats))


def parity_render(backend: ov_backend.OpenVINOGenerator, ref: dict) -> torch.Tensor:
    """The full-model parity clip (2 frames, (2, 3, 256, 256) in [-1, 1]) rendered by `backend`,
    its source encoding checked against the official one on the way."""
    src = encode(backend, ref["source"])
    check_source_encoding(src, ref)
    h = backend.encode_images(torch.cat([ref["exp_frames"], ref["pose_frames"]]).numpy())[0]
    with torch.inference_mode():
        pose, exp = backend.generator.coefficients(h[2:], "pose"), backend.generator.coefficients(h[:2], "exp")
    return backend.render(src, ref["lip_coef"], pose, exp)


def test_openvino_fp32_matches_the_official_lip_pose_outputs(ov_lip_pose):
    ref = load_fixture("gen_lip_pose_test_EDTalk_V.npz")
    src = encode(ov_lip_pose, ref["source"])
    check_source_encoding(src, ref)
    h_lip = ov_lip_pose.encode_images(ref["lip_frames"].numpy())[0]
    h_pose = ov_lip_pose.encode_images(ref["pose_frames"].numpy())[0]
    gen = ov_lip_pose.generator
    with torch.inference_mode():
        lip, pose = gen.coefficients(h_lip, "lip"), gen.coefficients(h_pose, "pose")
    assert_close(torch.cat([lip, pose], 1), ref["alpha"], ATOL_INTERMEDIATE)
    assert_close(ov_lip_pose.render(src, lip, pose, None), ref["output"], ATOL_OUT)


def test_openvino_fp32_matches_the_official_full_outputs(ov_full):
    ref = load_fixture("gen_edtalk_test_EDTalk_A.npz")
    assert_close(parity_render(ov_full, ref), ref["output"], ATOL_OUT)


def test_a_partial_last_batch_is_padded_and_matches_torch(ov_lip_pose):
    """3 frames at batch 2 through the render loop: the last batch (1 frame) is padded to 2, so no
    other decoder is exported; the frames agree with PyTorch fp32 within one 8-bit level."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    lip, pose = torch.randn(3, 20, generator=torch.Generator().manual_seed(0)), torch.zeros(1, 6)
    src = Source("noise", crops, [np.eye(3)], None)
    batches = list(generate(ov_lip_pose, src, lip, pose, None, None, BATCH, lambda total: tqdm(disable=True)))
    assert [len(b) for b in batches] == [2, 1]
    torch_backend = TorchGenerator(ov_lip_pose.generator, "lip_pose", CPU, torch.float32)
    expected = torch_backend.animate(torch_backend.encode_source(crops), lip, pose, None)
    ours = np.concatenate(batches)
    assert ours.shape == expected.shape == (3, 256, 256, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1
    assert len(list(CACHE.glob(f"{ov_lip_pose._stamp}/decoder-*.xml"))) == 1
    motion = ov_lip_pose.motion(crops, ["lip", "pose"])
    assert motion["lip"].shape == (1, 20) and motion["pose"].shape == (1, 6)
    assert describe(ov_lip_pose) == "openvino fp32"


def test_bf16_keeps_the_warp_and_flow_in_fp32(ov_lip_pose):
    """The exported decoder marks every GridSample, the flow's tanh and the mask's sigmoid (and
    what leads to them from the nearest convolution) to keep float32; no convolution is marked."""
    xml = next(CACHE.glob(f"{ov_lip_pose._stamp}/decoder-*.xml"))
    model = ov.Core().read_model(xml)
    kept = {op.get_type_name(): 0 for op in model.get_ordered_ops()}
    for op in model.get_ordered_ops():
        if set(op.get_rt_info().keys()) & {ov_backend.KEEP_FP32, "DisablePrecisionConversion_0"}:  # as saved
            kept[op.get_type_name()] += 1
    assert kept["GridSample"] == 6 and kept["Tanh"] == 6 and kept["Sigmoid"] == 6
    assert kept["Convolution"] == 0


@pytest.mark.skipif(not native_bf16(CPU), reason="this CPU computes no bf16 natively (no AMX-BF16 / AVX512-BF16)")
def test_openvino_bf16_renders_within_45_db_of_fp32(ov_full, synthetic_ckpts):
    """bf16 (convolutions in bf16, the warp, flow, mask and RGB in fp32) renders the full-model
    parity clip at >= 45 dB PSNR against OpenVINO fp32 (the PyTorch bf16 check: test_precision)."""
    ref = load_fixture("gen_edtalk_test_EDTalk_A.npz")
    bf16 = openvino_generator(synthetic_ckpts, "EDTalk.pt", "full", torch.bfloat16)
    ours = parity_render(bf16, ref)
    assert describe(bf16) == "openvino bf16"
    assert psnr(ours, parity_render(ov_full, ref)) >= MIN_PSNR_DB


def test_auto_picks_openvino_on_the_cpu_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    assert resolve_backend("auto", CPU) == "openvino"
    assert resolve_backend("auto", CPU, compile=True) == "torch"  # torch.compile is PyTorch's
    assert resolve_backend("torch", CPU) == "torch"
    monkeypatch.setenv(ENVIRONMENT, "torch")
    assert resolve_backend("auto", CPU) == "torch"
    monkeypatch.setenv(ENVIRONMENT, "onnx")
    with pytest.raises(EDTalkError, match="EDTALK_BACKEND must be one of torch, openvino, got onnx"):
        resolve_backend("auto", CPU)
    with pytest.raises(EDTalkError, match="--backend must be one of auto, torch, openvino, got onnx"):
        make_backend(None, "lip_pose", CPU, torch.float32, name="onnx")
    with pytest.raises(EDTalkError, match="--backend openvino runs on the CPU"):
        resolve_backend("openvino", torch.device("cuda"))
    with pytest.raises(EDTalkError, match="--compile compiles the PyTorch decoder"):
        resolve_backend("openvino", CPU, compile=True)


def test_the_demo_renders_with_openvino_by_default_and_says_so(
    ov_lip_pose,
    synthetic_ckpts,
    tmp_path,
    monkeypatch,
    capsys,
    caplog,
):
    """demo_lip_pose.py without --backend on the CPU renders with OpenVINO (3 frames at batch 2: the
    last one padded), its models read from the cache that the fixture filled (nothing exported),
    and its last line names the backend and the precision. The weights are the fixture's, the
    official-size ones."""
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    monkeypatch.setattr(ov_backend, "default_cache_dir", lambda: CACHE)
    caplog.set_level(logging.INFO, logger="edtalk")
    clip, out = first_frames_clip(tmp_path, 3), tmp_path / "out.mp4"
    argv = ["--lip_driving_path", clip, "--no_crop", "--device", "cpu", "--batch_size", BATCH]
    assert demo_lip_pose.main([*map(str, argv), "--ckpt_dir", str(synthetic_ckpts), "--save_path", str(out)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"wrote {out}: 3 frames, 0.12 s, 256x256, 25 fps")
    assert "exporting" not in caplog.text
    assert summary.endswith(f"backend: openvino, precision: {precision_name(resolve_precision('auto', CPU))}")
