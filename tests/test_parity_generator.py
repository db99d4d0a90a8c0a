"""The generators reproduce the official outputs and intermediates on the reference fixtures.

EDTALK_TEST_DEVICE=cuda runs them on a GPU (default cpu), in the exact mode (no TF32).
"""

import os

import pytest
import torch

import edtalk
from edtalk.device import exact_fp32
from networks.bank import combine

from .conftest import load_fixture

DEVICE = torch.device(os.environ.get("EDTALK_TEST_DEVICE", "cpu"))

ATOL_OUT = 1e-4
ATOL_INTERMEDIATE = 2e-5
# The motion bank Q comes from a float32 Householder QR (LAPACK): its rounding depends on the CPU's
# code path (AVX-512/AMX vs AVX2), so it is not bit-identical across machines. Measured max abs
# difference to the fixtures: 1.2e-7 (Intel AVX-512/AMX), 1.6e-7 (MKL/oneDNN restricted to AVX2).
ATOL_Q = 1e-6


def assert_close(actual, expected, atol):
    assert actual.shape == expected.shape
    diff = (actual.float().cpu() - expected.cpu()).abs().max().item()
    assert diff <= atol, f"max abs diff {diff:.3g} > {atol}"


def check_source_encoding(src, ref):
    assert_close(src.wa, ref["enc_source_wa"], ATOL_INTERMEDIATE)
    for level, feat in enumerate(src.feats):
        assert_close(feat[0].mean(dim=(1, 2)), ref[f"enc_source_feat{level}_chanmean"], ATOL_INTERMEDIATE)
        assert_close(feat[0, :4, :8, :8], ref[f"enc_source_feat{level}_crop"], ATOL_INTERMEDIATE)


@pytest.fixture(scope="module", autouse=True)
def _no_tf32():
    """fp32 on a GPU computes convolutions and matmuls in TF32 by default (10-bit mantissa): off here."""
    with exact_fp32(DEVICE):
        yield


@pytest.fixture(scope="module")
def full_generator(synthetic_ckpts):
    return edtalk.load_generator(synthetic_ckpts / "EDTalk.pt", DEVICE)


@pytest.fixture(scope="module")
def lip_pose_generator(synthetic_ckpts):
    return edtalk.load_generator(synthetic_ckpts / "EDTalk_lip_pose.pt", DEVICE)


@pytest.fixture(scope="module")
def ref_a():
    return {k: v.to(DEVICE) for k, v in load_fixture("gen_edtalk_test_EDTalk_A.npz").items()}


@pytest.fixture(scope="module")
def ref_v():
    return {k: v.to(DEVICE) for k, v in load_fixture("gen_lip_pose_test_EDTalk_V.npz").items()}


def test_full_generator_audio_mode_matches_official(full_generator, ref_a):
    """test_EDTalk_A: mouth from coefficients, pose and expression from frames."""
    gen = full_generator
    src = gen.encode_source(ref_a["source"])
    check_source_encoding(src, ref_a)
    assert_close(gen.basis(), ref_a["Q"], ATOL_Q)

    h = gen.encode(torch.cat([ref_a["exp_frames"], ref_a["pose_frames"]]))
    assert_close(h[:2], ref_a["enc_h"][:, 1], ATOL_INTERMEDIATE)
    assert_close(h[2:], ref_a["enc_h"][:, 2], ATOL_INTERMEDIATE)
    alpha = torch.cat([ref_a["lip_coef"], gen.coefficients(h[2:], "pose"), gen.coefficients(h[:2], "exp")], 1)
    assert_close(alpha, ref_a["alpha"], ATOL_INTERMEDIATE)
    latent, exp_latent = gen.compose_latent(src.wa, alpha)
    assert_close(combine(alpha, gen.basis()).sum(1), ref_a["directions"], ATOL_INTERMEDIATE)
    assert_close(latent, ref_a["latent"], ATOL_INTERMEDIATE)
    assert_close(exp_latent, ref_a["exp_latent"], ATOL_INTERMEDIATE)

    out = gen.animate(ref_a["source"], ref_a["lip_coef"], ref_a["pose_frames"], ref_a["exp_frames"])
    assert_close(out, ref_a["output"], ATOL_OUT)


def test_lip_pose_generator_video_mode_matches_official(lip_pose_generator, ref_v):
    """Lip-pose test_EDTalk_V: mouth and pose from frames."""
    gen = lip_pose_generator
    src = gen.encode_source(ref_v["source"])
    check_source_encoding(src, ref_v)
    assert_close(gen.basis(), ref_v["Q"], ATOL_Q)
    h_pose, h_lip = gen.encode(ref_v["pose_frames"]), gen.encode(ref_v["lip_frames"])
    alpha = torch.cat([gen.coefficients(h_lip, "lip"), gen.coefficients(h_pose, "pose")], 1)
    assert_close(alpha, ref_v["alpha"], ATOL_INTERMEDIATE)
    latent, exp_latent = gen.compose_latent(src.wa, alpha)
    assert exp_latent is None
    assert_close(latent, ref_v["latent"], ATOL_INTERMEDIATE)

    out = gen.animate(src, ref_v["lip_frames"], ref_v["pose_frames"])
    assert_close(out, ref_v["output"], ATOL_OUT)


def test_full_basis_extends_lip_pose_basis(full_generator):
    """Householder QR works column by column: expression bases are orthogonal to mouth and pose."""
    q = full_generator.basis()
    torch.testing.assert_close(q.t() @ q, torch.eye(36, device=q.device), atol=1e-5, rtol=0)


# ---- every mode is one composition of the same steps: the paths agree with each other ----------


def test_coefficient_and_frame_drivers_agree(full_generator, ref_a):
    """Passing coefficients computed from frames gives the same images as passing the frames
    (covers test_EDTalk_V, *_use_exp_weight: predefined weights are expression coefficients)."""
    gen = full_generator
    src = gen.encode_source(ref_a["source"])
    pose, exp = ref_a["pose_frames"][:1], ref_a["exp_frames"][:1]
    by_frames = gen.animate(src, pose, pose, exp)  # test_EDTalk_V with lip = pose frame
    alpha_exp = gen.coefficients(gen.encode(exp), "exp")
    by_weights = gen.animate(src, pose, pose, alpha_exp)  # test_EDTalk_V_use_exp_weight
    alpha_lip = gen.coefficients(gen.encode(pose), "lip")
    alpha_pose = gen.coefficients(gen.encode(pose), "pose")
    by_coefs = gen.animate(src, alpha_lip, alpha_pose, alpha_exp)
    assert_close(by_weights, by_frames, ATOL_OUT)
    assert_close(by_coefs, by_frames, ATOL_OUT)


def test_batched_equals_per_frame_and_source_reuse(narrow_full_generator, ref_a):
    gen = narrow_full_generator
    src = gen.encode_source(ref_a["source"])
    exp_weight = torch.linspace(-1, 1, 10, device=DEVICE)[None]  # (1, 10) broadcast over the batch
    batched = gen.animate(src, ref_a["lip_coef"], ref_a["pose_frames"], exp_weight)
    for i in range(2):
        single = gen.animate(ref_a["source"], ref_a["lip_coef"][i : i + 1], ref_a["pose_frames"][i : i + 1], exp_weight)
        assert_close(batched[i : i + 1], single, ATOL_OUT)
    repeated_source = gen.animate(
        ref_a["source"].expand(2, -1, -1, -1), ref_a["lip_coef"], ref_a["pose_frames"], exp_weight
    )
    assert_close(repeated_source, batched, ATOL_OUT)
    index = torch.tensor([0, 0], device=DEVICE)
    selected = gen.animate(src.select(index), ref_a["lip_coef"], ref_a["pose_frames"], exp_weight)
    assert_close(selected, batched, ATOL_OUT)


def test_missing_parts_take_the_source_motion(full_generator, lip_pose_generator, ref_a):
    """pose=None / exp=None use the source's own coefficients (the official --fix_pose behaviour)."""
    for gen in (full_generator, lip_pose_generator):
        source = ref_a["source"]
        implicit = gen.animate(source, ref_a["lip_coef"][:1])
        explicit = gen.animate(source, ref_a["lip_coef"][:1], source, source if gen.has_expression else None)
        assert_close(implicit, explicit, ATOL_OUT)


def test_self_reconstruction_forward(lip_pose_generator, ref_v):
    gen = lip_pose_generator
    out = gen(ref_v["source"], ref_v["lip_frames"])
    expected = gen.animate(ref_v["source"], ref_v["lip_frames"], ref_v["lip_frames"])
    assert_close(out, expected, 1e-6)


# ---- a library user's mistakes give clear messages (edtalk.inputs; the networks check nothing) ---------


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            torch.zeros(1, 3, 128, 128),
            r"source must be a \(B, 3, 256, 256\) image tensor in \[-1, 1\], got \(1, 3, 128, 128\)",
        ),
        (torch.full((1, 3, 256, 256), 200.0), r"source values must lie in \[-1, 1\].*got \[200, 200\]"),
        (torch.zeros(1, 3, 256, 256, dtype=torch.uint8), r"floating-point"),
    ],
)
def test_bad_source_image(lip_pose_generator, bad, message):
    with pytest.raises(edtalk.EDTalkError, match=message):
        edtalk.animate(lip_pose_generator, bad, torch.zeros(1, 20))
    with pytest.raises(edtalk.EDTalkError, match=message):
        edtalk.encode_source(lip_pose_generator, bad)


def test_bad_drivers(full_generator, lip_pose_generator, ref_a):
    source = ref_a["source"]
    encoded = full_generator.encode_source(source)
    cases = [
        (
            full_generator,
            source,
            (torch.zeros(2, 19),),
            r"^lip must be \(B, 20\) coefficients or \(B, 3, H, W\) frames",
        ),
        (full_generator, source, (None,), r"^lip must be a tensor of frames or coefficients, got NoneType$"),
        (full_generator, source, (torch.zeros(2, 20), torch.zeros(3, 6)), r"batch sizes differ \(lip=2, pose=3\)"),
        (full_generator, encoded.select(torch.tensor([0, 0])), (torch.zeros(3, 20),), r"\(source=2, lip=3\)"),
        (full_generator, source, (torch.zeros(1, 20), torch.full((1, 3, 256, 256), -3.0)), r"^pose frames values"),
        (
            lip_pose_generator,
            source,
            (torch.zeros(1, 20), None, torch.zeros(1, 10)),
            r"lip-pose generator.*needs the full EDTalk generator \(EDTalk.pt\)",
        ),
    ]
    for gen, src, drivers, message in cases:
        with pytest.raises(edtalk.EDTalkError, match=message):
            edtalk.animate(gen, src, *drivers)


def test_checked_entry_points_give_the_networks_results(full_generator, ref_a):
    """edtalk.animate / encode_source check, then return exactly what the network's own methods return."""
    gen, exp = full_generator, ref_a["exp_frames"]
    src = edtalk.encode_source(gen, ref_a["source"])
    checked = edtalk.animate(gen, src, ref_a["lip_coef"], ref_a["pose_frames"], exp)
    assert_close(checked, gen.animate(ref_a["source"], ref_a["lip_coef"], ref_a["pose_frames"], exp), 0.0)
    assert_close(checked, ref_a["output"], ATOL_OUT)


def test_basis_is_cached_at_inference_and_follows_weight_changes():
    from networks import LIP_POSE, Generator

    gen = Generator(LIP_POSE)
    with torch.no_grad():
        q1 = gen.basis()
        assert gen.basis() is q1  # reused
        gen.direction_lipnonlip.weight.mul_(2).add_(0.5)
        q2 = gen.basis()
        assert q2 is not q1 and not torch.equal(q1, q2)
    with torch.enable_grad():
        q3 = gen.basis()
        assert q3.requires_grad  # training differentiates through the QR
        torch.testing.assert_close(q3.detach(), q2)


def test_cached_layer_weights_follow_loaded_and_optimised_weights(narrow_lip_pose_generator, ref_v):
    """Inference caches scaled weights; a state-dict load or an optimiser step must not leave them stale."""
    from networks import Generator

    loaded = narrow_lip_pose_generator
    gen = Generator(loaded.config).to(DEVICE).eval()
    source, lip = ref_v["source"], ref_v["lip_frames"][:1]
    gen.animate(source, lip)  # fills the caches with the random initial weights
    gen.load_state_dict(loaded.state_dict())
    assert_close(gen.animate(source, lip), loaded.animate(source, lip), 0.0)
    with torch.enable_grad():
        optim = torch.optim.SGD(gen.parameters(), lr=0.1)
        gen(source, lip).mean().backward()
        optim.step()
    fresh = Generator(loaded.config).to(DEVICE).eval()
    fresh.load_state_dict(gen.state_dict())
    assert_close(gen.animate(source, lip), fresh.animate(source, lip), 0.0)
