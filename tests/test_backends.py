"""The generator backends: OpenVINO matches the PyTorch fp32 generator within the parity tolerances,
exports and compiles once per shape (then reads its cache), and keeps the warp in float32 under bf16."""

import logging

import numpy as np
import pytest
import torch

import edtalk
from edtalk.backends import describe, make_backend, resolve_backend
from edtalk.errors import EDTalkError

from .conftest import load_fixture
from .test_parity_generator import ATOL_INTERMEDIATE, ATOL_OUT, assert_close, check_source_encoding

ov = pytest.importorskip("openvino", reason="openvino is not installed: the OpenVINO backend cannot run here")
from edtalk.backends.openvino import KEEP_FP32, OpenVINOGenerator  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ov_lip_pose(synthetic_ckpts, tmp_path_factory):
    gen = edtalk.load_generator(synthetic_ckpts / "EDTalk_lip_pose.pt", CPU)
    return OpenVINOGenerator(gen, "lip_pose", torch.float32, tmp_path_factory.mktemp("ov_cache"))


@pytest.fixture(scope="module")
def ov_full(synthetic_ckpts, tmp_path_factory):
    gen = edtalk.load_generator(synthetic_ckpts / "EDTalk.pt", CPU)
    return OpenVINOGenerator(gen, "full", torch.float32, tmp_path_factory.mktemp("ov_cache"))


def encode(backend: OpenVINOGenerator, images: torch.Tensor):
    """A SourceEncoding of float images through the backend's encoder (no uint8 rounding)."""
    from networks.generator import SourceEncoding

    wa, *feats = backend.encode_images(images.numpy())
    with torch.inference_mode():
        return SourceEncoding(wa, feats, backend.generator.dec.prepare_eem(feats))


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
    src = encode(ov_full, ref["source"])
    check_source_encoding(src, ref)
    gen = ov_full.generator
    h = ov_full.encode_images(torch.cat([ref["exp_frames"], ref["pose_frames"]]).numpy())[0]
    with torch.inference_mode():
        pose, exp = gen.coefficients(h[2:], "pose"), gen.coefficients(h[:2], "exp")
    assert_close(ov_full.render(src, ref["lip_coef"], pose, exp), ref["output"], ATOL_OUT)


def test_openvino_frames_match_torch_frames_and_the_cache_is_reused(ov_lip_pose, caplog):
    """uint8 frames through the whole interface agree with PyTorch fp32 within one level; a second
    backend on the same cache folder exports nothing."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    lip, pose = torch.randn(1, 20, generator=torch.Generator().manual_seed(0)), torch.zeros(1, 6)
    ours = ov_lip_pose.animate(ov_lip_pose.encode_source(crops), lip, pose, None)
    gen = ov_lip_pose.generator
    with torch.inference_mode():
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
        expected = gen.animate(gen.encode_source(x), lip, pose).clamp(-1, 1).add(1).mul(127.5).round()
    assert ours.shape == (1, 256, 256, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - expected.permute(0, 2, 3, 1).numpy().astype(int)).max() <= 1
    motion = ov_lip_pose.motion(crops, ["lip", "pose"])
    assert motion["lip"].shape == (1, 20) and motion["pose"].shape == (1, 6)
    again = OpenVINOGenerator(gen, "lip_pose", torch.float32, ov_lip_pose._folder)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again.animate(again.encode_source(crops), lip, pose, None)
    assert "exporting" not in caplog.text
    assert describe(again) == "openvino fp32"


def test_bf16_keeps_the_warp_and_flow_in_fp32(ov_lip_pose):
    """The exported decoder marks every GridSample, the flow's tanh and the mask's sigmoid (and
    what leads to them from the nearest convolution) to keep float32; no convolution is marked."""
    source = ov_lip_pose.encode_source(np.zeros((1, 256, 256, 3), np.uint8))
    ov_lip_pose.animate(source, torch.zeros(1, 20), None, None)  # exports the batch-1 decoder
    xml = next(ov_lip_pose._folder.rglob("decoder-*.xml"))
    model = ov.Core().read_model(xml)
    kept = {op.get_type_name(): 0 for op in model.get_ordered_ops()}
    for op in model.get_ordered_ops():
        if set(op.get_rt_info().keys()) & {KEEP_FP32, "DisablePrecisionConversion_0"}:  # the mark as saved
            kept[op.get_type_name()] += 1
    assert kept["GridSample"] == 6 and kept["Tanh"] == 6 and kept["Sigmoid"] == 6
    assert kept["Convolution"] == 0


def test_backend_choice():
    assert resolve_backend("auto", CPU) == "openvino"
    assert resolve_backend("torch", CPU) == "torch"
    with pytest.raises(EDTalkError, match="--backend must be one of auto, torch, openvino"):
        make_backend(None, "lip_pose", CPU, torch.float32, name="onnx")
    with pytest.raises(EDTalkError, match="--backend openvino runs on the CPU"):
        resolve_backend("openvino", torch.device("cuda"))
