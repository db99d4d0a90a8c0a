"""Known-answer tests of the frame, landmark, identity and FID metrics (evaluation/)."""

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edtalk.crop_geometry import face_template
from edtalk.errors import CheckpointError
from edtalk.video_io import read_image
from evaluation.fid import InceptionFeatures, fid, frechet_distance, load_inception, statistics
from evaluation.identity import ARCFACE_POINTS, ArcFaceIdentity, arcface_crop, cosine, five_points
from evaluation.image_metrics import PSNR_CAP, cpbd, edge_widths, gray_levels, psnr, ssim, vertical_edges
from evaluation.landmarks import lmd
from networks.inception import FIDInceptionV3

from .conftest import MEDIA
from .synthetic_inception_weights import make_state_dict

CPBD_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cpbd"
INCEPTION_REF = Path(__file__).resolve().parent / "fixtures" / "inception" / "inception_ref.npz"


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return read_image(MEDIA / "identity_source.jpg")  # (256, 256, 3) aligned face


def test_psnr_and_ssim_known_answers(face):
    assert psnr(face, face) == PSNR_CAP == 100.0 and ssim(face, face) == pytest.approx(1.0, abs=1e-9)
    face = face.clip(10, 245)
    noisy = face.astype(int) + np.where(np.indices(face.shape).sum(0) % 2 == 0, 4, -4)  # |error| 4 everywhere
    expected = 10 * math.log10(255**2 / 16)
    assert psnr(noisy.astype(np.uint8), face) == pytest.approx(expected, abs=1e-6)
    assert ssim(noisy.astype(np.uint8), face) < 0.99


def test_lmd_of_landmarks_shifted_by_a_known_amount():
    rng = np.random.default_rng(0)
    ref = rng.uniform(60, 200, size=(10, 68, 2))
    shifted = ref + np.array([3.0, 4.0])  # 5 px everywhere
    assert lmd(shifted, ref, align=False) == pytest.approx({"M-LMD": 5.0, "F-LMD": 5.0})
    mouth_only = ref.copy()
    mouth_only[:, 48:68] += np.array([0.0, 2.0])
    assert lmd(mouth_only, ref, align=False) == pytest.approx({"M-LMD": 2.0, "F-LMD": 2.0 * 20 / 68})
    lost = shifted.copy()
    lost[0] = np.nan  # a frame without a face is left out
    assert lmd(lost, ref, align=False)["F-LMD"] == pytest.approx(5.0)


def test_lmd_aligns_both_clips_by_the_reference_and_keeps_a_misplaced_face():
    t = face_template()
    reference = np.repeat(t[None], 6, axis=0) * 2.0 + np.array([40.0, -10.0])  # a 2x face in a bigger video
    assert lmd(reference.copy(), reference) == pytest.approx({"M-LMD": 0.0, "F-LMD": 0.0}, abs=1e-9)
    moving = reference.copy()
    moving[:, 48:68, 1] += 2.0 * np.arange(6)[:, None]  # the mouth moves down by 0..10 video px = 0..5 crop px
    assert lmd(moving, reference)["M-LMD"] == pytest.approx(2.5, abs=1e-4)  # the motion is kept, in crop pixels
    misplaced = reference + np.array([12.0, 16.0])  # the whole face 20 video px off in every frame
    scores = lmd(misplaced, reference)
    assert scores["F-LMD"] == pytest.approx(10.0, abs=1e-4) and scores["M-LMD"] == pytest.approx(10.0, abs=1e-4)
    lost = reference.copy()
    lost[2] = np.nan  # a reference frame without a face is left out of the alignment and the mean
    assert lmd(misplaced, lost)["F-LMD"] == pytest.approx(10.0, abs=1e-4)


def test_cpbd_ranks_sharp_above_blurred(face):
    sharp = cpbd(face)
    blurred = cpbd(cv2.GaussianBlur(face, (0, 0), 2.0))
    assert 0 < blurred < sharp <= 1
    assert cpbd(np.full((128, 128, 3), 90, np.uint8)) == 0.0  # no edges


def test_edge_width_of_a_known_ramp():
    row = np.concatenate([np.zeros(10), np.linspace(0, 200, 7)[1:], np.full(10, 200.0)])  # rises over 6 px
    gray = np.repeat(row[None], 5, axis=0)
    edges = np.zeros_like(gray, bool)
    edges[2, 12] = True
    widths = edge_widths(gray, edges)
    assert widths[2, 12] == 6 and widths.sum() == 6


def box_blur(image: np.ndarray, k: int = 5) -> np.ndarray:
    """(H, W, 3) uint8 -> the floored k x k box mean per channel, borders edge-replicated (integers: exact)."""
    pad = k // 2
    x = np.pad(image.astype(np.int64), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    c = np.pad(np.cumsum(np.cumsum(x, axis=0), axis=1), ((1, 0), (1, 0), (0, 0)))
    h, w = image.shape[:2]
    sums = c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]
    return (sums // (k * k)).astype(np.uint8)


def test_cpbd_matches_the_reference_package():
    """Numbers of the `cpbd` package (1.0.7) on two images and their blurred copies; see its README."""
    reference = json.loads((CPBD_FIXTURES / "cpbd_ref.json").read_text())["images"]
    with np.load(CPBD_FIXTURES / "cpbd_inputs.npz") as f:
        images = {name: f[name] for name in f.files}
    images.update({f"{name}_box5": box_blur(image) for name, image in list(images.items())})
    assert sorted(images) == sorted(reference)
    for name, image in images.items():
        expected = reference[name]
        gray = gray_levels(image)
        assert list(gray.shape) == expected["shape"] and int(gray.sum()) == expected["gray_sum"], name
        widths = edge_widths(gray, vertical_edges(gray))
        assert int((widths > 0).sum()) == expected["width_pixels"], name
        assert widths.sum() == pytest.approx(expected["width_sum"], abs=1e-9), name
        assert cpbd(image) == pytest.approx(expected["cpbd"], abs=1e-9), name


def test_fid_formula_against_direct_gaussian_computation():
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    d1, d2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    s1, s2 = rotation @ np.diag(d1) @ rotation.T, rotation @ np.diag(d2) @ rotation.T  # commuting covariances
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    direct = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-9)
    # 1-D: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(
        5.0
    )
    features = rng.normal(size=(50, 8))
    assert abs(fid(features, features)) < 1e-9
    few = rng.normal(size=(5, 8)) * 2  # fewer samples than dimensions: the sample-space route
    assert fid(few, features) == pytest.approx(frechet_distance(*statistics(few), *statistics(features)), rel=1e-6)
    assert abs(fid(few, few)) < 1e-9
    assert fid(features, features + 1.0) == pytest.approx(8.0, rel=1e-6)  # a shift of 1 in each of 8 dims
    mu, sigma = statistics(features)
    assert sigma.shape == (8, 8) and np.allclose(sigma, np.cov(features.T))


def _fid_inception_layout() -> dict[str, tuple[int, ...]]:
    """pytorch-fid's FID Inception state-dict layout (torchvision Inception3, aux_logits off, 1008
    classes, FIDInceptionA/C/E blocks), written from the documented architecture: (name, cin, cout, kernel)."""
    stem = [("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3), ("Conv2d_2b_3x3", 32, 64, 3)]
    stem += [("Conv2d_3b_1x1", 64, 80, 1), ("Conv2d_4a_3x3", 80, 192, 3)]
    convs = list(stem)

    def block_a(name, cin, pool):
        return [
            (f"{name}.branch1x1", cin, 64, 1),
            (f"{name}.branch5x5_1", cin, 48, 1),
            (f"{name}.branch5x5_2", 48, 64, 5),
            (f"{name}.branch3x3dbl_1", cin, 64, 1),
            (f"{name}.branch3x3dbl_2", 64, 96, 3),
            (f"{name}.branch3x3dbl_3", 96, 96, 3),
            (f"{name}.branch_pool", cin, pool, 1),
        ]

    def block_c(name, c7):
        seven = [
            (f"{name}.branch7x7_1", 768, c7, 1),
            (f"{name}.branch7x7_2", c7, c7, (1, 7)),
            (f"{name}.branch7x7_3", c7, 192, (7, 1)),
        ]
        dbl = [(f"{name}.branch7x7dbl_{i}", c7, c7, k) for i, k in ((2, (7, 1)), (3, (1, 7)), (4, (7, 1)))]
        return [
            (f"{name}.branch1x1", 768, 192, 1),
            *seven,
            (f"{name}.branch7x7dbl_1", 768, c7, 1),
            *dbl,
            (f"{name}.branch7x7dbl_5", c7, 192, (1, 7)),
            (f"{name}.branch_pool", 768, 192, 1),
        ]

    def block_e(name, cin):
        return [
            (f"{name}.branch1x1", cin, 320, 1),
            (f"{name}.branch3x3_1", cin, 384, 1),
            (f"{name}.branch3x3_2a", 384, 384, (1, 3)),
            (f"{name}.branch3x3_2b", 384, 384, (3, 1)),
            (f"{name}.branch3x3dbl_1", cin, 448, 1),
            (f"{name}.branch3x3dbl_2", 448, 384, 3),
            (f"{name}.branch3x3dbl_3a", 384, 384, (1, 3)),
            (f"{name}.branch3x3dbl_3b", 384, 384, (3, 1)),
            (f"{name}.branch_pool", cin, 192, 1),
        ]

    convs += block_a("Mixed_5b", 192, 32) + block_a("Mixed_5c", 256, 64) + block_a("Mixed_5d", 288, 64)
    convs += [("Mixed_6a.branch3x3", 288, 384, 3), ("Mixed_6a.branch3x3dbl_1", 288, 64, 1)]
    convs += [("Mixed_6a.branch3x3dbl_2", 64, 96, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3)]
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        convs += block_c(name, c7)
    convs += [("Mixed_7a.branch3x3_1", 768, 192, 1), ("Mixed_7a.branch3x3_2", 192, 320, 3)]
    convs += [("Mixed_7a.branch7x7x3_1", 768, 192, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7))]
    convs += [("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1)), ("Mixed_7a.branch7x7x3_4", 192, 192, 3)]
    convs += block_e("Mixed_7b", 1280) + block_e("Mixed_7c", 2048)
    layout = {}
    for name, cin, cout, k in convs:
        kh, kw = (k, k) if isinstance(k, int) else k
        layout[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{name}.bn.{leaf}"] = (cout,)
        layout[f"{name}.bn.num_batches_tracked"] = ()
    layout["fc.weight"], layout["fc.bias"] = (1008, 2048), (1008,)
    return layout


def test_inception_state_dict_matches_pytorch_fid_layout():
    net = FIDInceptionV3()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == _fid_inception_layout()
    assert sum(p.numel() for p in net.parameters()) == 23_850_960  # torchvision's 1008-class Inception-v3, no aux


def test_inception_loads_released_layout_and_fid_of_a_set_with_itself_is_zero(tmp_path, face):
    torch.manual_seed(0)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    features = InceptionFeatures(path, batch_size=2)
    frames = np.stack([face, face[:, ::-1], cv2.GaussianBlur(face, (0, 0), 3)])
    out = features(frames)
    assert out.shape == (3, 2048) and np.isfinite(out).all() and (out >= 0).all()  # pool3 after ReLU
    assert abs(fid(out, out)) < 1e-6 * np.sum(out**2)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(CheckpointError, match="wrong.pth is not pt_inception"):
        load_inception(wrong)
    with pytest.raises(CheckpointError, match="not found: .*absent.pth"):
        load_inception(tmp_path / "absent.pth")


def test_inception_features_match_pytorch_fid_on_synthetic_weights(tmp_path):
    """pytorch-fid's own InceptionV3 (pool3) on the same synthetic weights; see tests/fixtures/inception/README.md."""
    with np.load(INCEPTION_REF) as ref:
        images, expected, meta = ref["images"], ref["features_float64"], json.loads(str(ref["meta"]))
    shapes = {k: tuple(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    state = make_state_dict(shapes)
    digests = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in state.items()}
    whole = hashlib.sha256("".join(f"{k}:{d}" for k, d in sorted(digests.items())).encode()).hexdigest()
    assert len(state) == meta["keys"] and whole == meta["state_sha256"]  # the very weights the fixture used
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    features = InceptionFeatures(path, batch_size=2)(images)
    assert features.shape == (3, 2048)
    assert np.abs(features - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())  # float32 vs float64 run


def test_arcface_alignment_puts_the_five_points_on_the_template():
    landmarks = face_template() * 1.7 + np.array([30.0, 12.0])
    frame = np.zeros((600, 600, 3), np.uint8)
    for x, y in five_points(landmarks).astype(int):
        cv2.circle(frame, (int(x), int(y)), 3, (255, 255, 255), -1)
    crop = arcface_crop(frame, landmarks)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_POINTS.round().astype(int):
        assert crop[y - 1 : y + 2, x - 1 : x + 2].max() > 100  # each point lands near its template spot
    assert cosine(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)


def test_arcface_onnx_identity(tmp_path, face):
    import onnx
    from onnx import TensorProto, helper

    # a stand-in "ArcFace": per-channel means of the (1, 3, 112, 112) input, a 3-d embedding
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["emb"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "arcface.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    landmarks = face_template()
    net = ArcFaceIdentity(path)
    emb = net.embed(face, landmarks)
    expected = (arcface_crop(face, landmarks).astype(np.float32) - 127.5) / 127.5
    assert np.allclose(emb, expected.mean(axis=(0, 1)), atol=1e-5)  # RGB order, scaled to [-1, 1]
    assert cosine(emb, net.embed(face, landmarks)) == pytest.approx(1.0)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(CheckpointError, match="garbage.onnx"):
        ArcFaceIdentity(garbage)
