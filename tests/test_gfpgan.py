"""Our GFPGAN v1.3/v1.4 ("clean") restorer: schema, synthetic weights, loader errors, and parity with
the official GFPGANv1Clean (tests/fixtures/gfpgan/gfpgan_ref.npz, float32 CPU, tolerance 1e-4)."""

import json

import numpy as np
import pytest
import torch

import edtalk
from edtalk.errors import CheckpointError
from edtalk.gfpgan import _gfpgan_state
from networks.gfpgan import GFPGANv1Clean

from . import synthetic_gfpgan_weights as sg
from .conftest import GFPGAN_FIXTURES
from .synthetic_weights import read_table

TOL = 1e-4  # the fixture README's float32 CPU tolerance (its own thread-count noise is ~1e-6)
TABLE = GFPGAN_FIXTURES / "GFPGANv1Clean_state_dict.tsv"


@pytest.fixture(scope="module")
def reference():
    with np.load(GFPGAN_FIXTURES / "gfpgan_ref.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def gfpgan(gfpgan_ckpt):
    return edtalk.load_gfpgan(gfpgan_ckpt)


def _state_kinds(model: torch.nn.Module) -> dict[str, str]:
    params = {name for name, _ in model.named_parameters()}
    return {k: "parameter" if k in params else "buffer" for k in model.state_dict()}


def test_state_dict_schema():
    """Keys (in the official order), shapes, dtypes and parameter/buffer kinds equal the released table."""
    model = GFPGANv1Clean()
    rows = read_table(TABLE)
    state, kinds = model.state_dict(), _state_kinds(model)
    assert list(state) == [key for key, _, _, _ in rows]
    for key, shape, dtype, kind in rows:
        assert tuple(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key
        assert kinds[key] == kind, key
    assert sum(t.numel() for t in state.values()) == 87_143_276


def test_synthetic_weights_match_reference_checksums(gfpgan_ckpt):
    """The cached synthetic checkpoint holds exactly the fixture's seed-1 weights (sha256 of every tensor)."""
    data = torch.load(gfpgan_ckpt, map_location="cpu", weights_only=True)
    assert list(data) == ["params_ema"]
    total, per = sg.sha256_checksums({k: v.numpy() for k, v in data["params_ema"].items()})
    assert sg.checksum_mismatches(total, per) == []
    meta = json.loads(str(np.load(GFPGAN_FIXTURES / "gfpgan_ref.npz")["meta_json"]))
    assert meta["weights_sha256_total"] == total


def test_loader_returns_eval_model(gfpgan):
    assert isinstance(gfpgan, GFPGANv1Clean) and not gfpgan.training
    assert edtalk.load_gfpgan is not None and "load_gfpgan" in edtalk.__all__


def _record(model: GFPGANv1Clean) -> tuple[dict, list]:
    """Forward (pre-)hooks that store the fixture's intermediates, named as in gfpgan_ref.npz."""
    got, handles = {}, []

    def chanmean(t):
        return t.float().mean(dim=(0, 2, 3))

    def out_hook(name, full=None, crop=None):
        def hook(_module, _args, out):
            got[f"{name}_chanmean"] = chanmean(out)
            if full:
                got[full] = out.clone()
            if crop:
                got[crop] = out[..., :8, :8].clone()

        return hook

    def pre_hook(name):
        def hook(_module, args):
            got[f"{name}_chanmean"] = chanmean(args[0])

        return hook

    def final_linear_pre(_module, args):
        got["enc_final"] = args[0].reshape(-1, 256, 4, 4).clone()
        got["enc_final_chanmean"] = chanmean(got["enc_final"])

    def final_linear_out(_module, _args, out):
        got["style_code"] = out.reshape(out.shape[0], -1, 512).clone()

    dec = model.stylegan_decoder
    hooks = [
        (model.conv_body_down[0], pre_hook("enc_first"), True),
        (model.final_linear, final_linear_pre, True),
        (model.final_linear, final_linear_out, False),
        (dec.style_conv1, out_hook("dec_style_conv1"), False),
        (dec.to_rgb1, out_hook("dec_to_rgb1_unused", full="dec_to_rgb1"), False),
    ]
    for k in range(7):
        hooks += [
            (model.conv_body_down[k], out_hook(f"enc_down{k}"), False),
            (model.conv_body_up[k], out_hook(f"unet_up{k}"), False),
            (model.condition_scale[k], out_hook(f"cond_scale{k}", full="cond_scale0" if k == 0 else None), False),
            (model.condition_shift[k], out_hook(f"cond_shift{k}", full="cond_shift0" if k == 0 else None), False),
            (dec.style_convs[2 * k], out_hook(f"dec_lvl{k}_up"), False),
            (dec.style_convs[2 * k + 1], pre_hook(f"dec_lvl{k}_sft"), True),
            (dec.style_convs[2 * k + 1], out_hook(f"dec_lvl{k}_conv"), False),
            (dec.to_rgbs[k], out_hook(f"dec_lvl{k}_skip", crop=f"dec_lvl{k}_skip_crop"), False),
        ]
    for module, hook, pre in hooks:
        handles.append(module.register_forward_pre_hook(hook) if pre else module.register_forward_hook(hook))
    return got, handles


def to_bgr_uint8(image: torch.Tensor) -> np.ndarray:
    """The official post-processing of one output: clamp, [0, 1], RGB -> BGR, round to uint8 (H, W, 3)."""
    v = (image[0].float().clamp(-1, 1) + 1) / 2  # float32 throughout, as the official tensor2img
    return np.round(v.flip(0).permute(1, 2, 0).numpy() * np.float32(255.0)).astype(np.uint8)


@pytest.mark.slow  # ~6 s forward on 2 CPU cores (+10 s once to write the synthetic weights)
def test_parity_with_official(gfpgan, reference):
    """Output and every stored intermediate agree with the official forward pass within 1e-4."""
    x = torch.from_numpy(reference["input"])
    got, handles = _record(gfpgan)
    try:
        out = gfpgan(x)  # randomize_noise=False is the default
    finally:
        for h in handles:
            h.remove()
    assert out.shape == (1, 3, 512, 512) and out.dtype == torch.float32
    expected_keys = {
        k for k in reference if k not in {"input", "output", "crop_bgr_uint8", "output_bgr_uint8", "meta_json"}
    } - {"align_affine", "align_landmarks"}
    assert expected_keys <= got.keys(), sorted(expected_keys - got.keys())
    diffs = {k: float((got[k] - torch.from_numpy(reference[k])).abs().max()) for k in sorted(expected_keys)}
    diffs["output"] = float((out - torch.from_numpy(reference["output"])).abs().max())
    worst = max((k for k in diffs if k != "output"), key=diffs.get)
    print(f"max abs diff: output {diffs['output']:.2e}, worst intermediate {worst} {diffs[worst]:.2e}")
    bad = {k: d for k, d in diffs.items() if not d <= TOL}
    assert not bad, f"beyond {TOL}: {bad}"
    # The official uint8 image: our conversion of the official output gives it exactly; our output
    # gives it but for a few values that sit on a rounding boundary (about 1 in 30,000 at ~1e-6 apart).
    assert np.array_equal(to_bgr_uint8(torch.from_numpy(reference["output"])), reference["output_bgr_uint8"])
    mismatch = to_bgr_uint8(out).astype(int) - reference["output_bgr_uint8"].astype(int)
    assert np.abs(mismatch).max() <= 1 and np.count_nonzero(mismatch) <= 100
    # restore() is the clamped output.
    assert torch.equal(gfpgan.restore(x), out.clamp(-1, 1))


def test_input_conversion_matches_fixture(reference):
    """The fixture's aligned BGR crop, converted as the official pipeline does, is exactly its network input."""
    crop = reference["crop_bgr_uint8"]
    x = ((crop / 255.0).astype(np.float32)[:, :, ::-1].transpose(2, 0, 1) - 0.5) / 0.5
    assert np.array_equal(x[None], reference["input"])


@pytest.mark.slow  # one batch-of-2 forward, ~12 s on 2 CPU cores
def test_batch_and_noise_modes(gfpgan, reference):
    """Batched frames match single ones (the stored noise is shared by the batch); fresh noise changes the image."""
    x = torch.from_numpy(reference["input"])
    out = gfpgan(torch.cat([x, x.flip(-1)]))
    assert out.shape == (2, 3, 512, 512)
    assert float((out[:1] - torch.from_numpy(reference["output"])).abs().max()) <= TOL
    noisy = gfpgan(x, randomize_noise=True, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(noisy).all()
    assert float((noisy - out[:1]).abs().max()) > 0.05


def test_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(CheckpointError) as info:
        edtalk.load_gfpgan(tmp_path / "GFPGANv1.4.pth")
    message = str(info.value)
    assert "\n" not in message and "GFPGANv1.4.pth" in message and "github.com/TencentARC/GFPGAN" in message


def test_corrupt_file_is_one_line_error(tmp_path):
    path = tmp_path / "GFPGANv1.4.pth"
    path.write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(CheckpointError) as info:
        edtalk.load_gfpgan(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_wrong_files_are_one_line_errors(tmp_path):
    edtalk_like = tmp_path / "EDTalk.pt"
    torch.save({"gen": {"fc.0.weight": torch.zeros(1)}}, edtalk_like)
    with pytest.raises(CheckpointError, match="EDTalk checkpoint, not a GFPGAN"):
        edtalk.load_gfpgan(edtalk_like)
    partial = tmp_path / "partial.pth"
    torch.save({"params_ema": {"conv_body_first.weight": torch.zeros(32, 3, 1, 1)}}, partial)
    with pytest.raises(CheckpointError, match="missing keys") as info:
        edtalk.load_gfpgan(partial)
    assert "\n" not in str(info.value)
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save({"params_ema": {"conv_body_first.weight": torch.zeros(16, 3, 1, 1)}}, wrong_shape)  # shapes first
    with pytest.raises(CheckpointError, match="does not match GFPGAN") as info:
        edtalk.load_gfpgan(wrong_shape)
    assert "\n" not in str(info.value)


def test_entry_selection():
    """'params_ema' wins over 'params' (as in the official loader); the original v1 architecture is named."""
    ema, raw = {"conv_body_first.weight": 1}, {"conv_body_first.weight": 2}
    assert _gfpgan_state({"params": raw, "params_ema": ema}, "f") is ema
    assert _gfpgan_state({"params": raw}, "f") is raw
    with pytest.raises(CheckpointError, match="original GFPGANv1"):
        _gfpgan_state({"params_ema": {"conv_body_first.0.weight": 1}}, "f")


def test_usage_table_covers_schema():
    """The fixture's usage table lists every key; only the style MLP and the U-Net side outputs are unused."""
    lines = (GFPGAN_FIXTURES / "GFPGANv1Clean_usage.tsv").read_text().splitlines()
    usage = dict(line.split("\t") for line in lines[1:] if line.strip())
    assert list(usage) == [key for key, _, _, _ in read_table(TABLE)]
    unused = {k for k, v in usage.items() if v.startswith("unused")}
    assert unused == {k for k in usage if k.startswith(("stylegan_decoder.style_mlp.", "toRGB."))}
    assert {k for k, v in usage.items() if "randomize_noise=False" in v} == {k for k in usage if ".noises.noise" in k}


# --------------------------------------------------------------------------------------------
# Face preparation and paste-back (edtalk.face_sr)
# --------------------------------------------------------------------------------------------


class _Constant(torch.nn.Module):
    """Stand-in restorer: returns its input (value=None) or a constant image, on the input's device."""

    def __init__(self, value: float | None = None):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.value = value

    def forward(self, x):
        return x.clone() if self.value is None else torch.full_like(x, self.value)


@pytest.fixture(scope="module")
def face_frame() -> np.ndarray:
    from PIL import Image

    from .conftest import MEDIA

    return np.asarray(Image.open(MEDIA / "identity_source.jpg").convert("RGB").resize((256, 256)))


def test_five_points_from_68_landmarks():
    from edtalk.face_sr import five_points

    lm = np.arange(136, dtype=float).reshape(68, 2)
    pts = five_points(lm)
    assert pts.shape == (5, 2)
    assert np.allclose(pts[0], lm[36:42].mean(0)) and np.allclose(pts[1], lm[42:48].mean(0))
    assert np.array_equal(pts[2:], lm[[30, 48, 54]])


def test_alignment_and_conversions_match_fixture(reference):
    """Our alignment of the fixture's face gives the official matrix, crop and network input exactly."""
    from skimage.data import astronaut

    from edtalk.face_sr import align_face, alignment_matrix, faces_to_tensor, tensor_to_faces

    matrix = alignment_matrix(reference["align_landmarks"])
    assert np.allclose(matrix, reference["align_affine"], rtol=0, atol=1e-9)
    crop = align_face(astronaut(), reference["align_affine"])
    assert np.array_equal(crop, reference["crop_bgr_uint8"][..., ::-1])
    assert torch.equal(faces_to_tensor(crop[None]), torch.from_numpy(reference["input"]))
    faces = tensor_to_faces(torch.from_numpy(reference["output"]))
    assert np.array_equal(faces[0], reference["output_bgr_uint8"][..., ::-1])


def test_restorer_geometry_with_identity_network(face_frame):
    """An identity restorer gives back the upscaled frame: exact far from the face, close inside it."""
    import cv2

    from edtalk.crop_geometry import face_template
    from edtalk.face_sr import FaceRestorer, aligned_face_mask, alignment_matrix, five_points, inverse_matrix

    restorer = FaceRestorer(_Constant(), batch_size=2)
    out = restorer.restore(face_frame[None], [face_template()])
    assert out.shape == (1, 512, 512, 3) and out.dtype == np.uint8
    background = cv2.resize(face_frame, (512, 512), interpolation=cv2.INTER_LANCZOS4)
    diff = np.abs(out[0].astype(int) - background.astype(int)).max(axis=2)
    inverse = inverse_matrix(alignment_matrix(five_points(face_template())), 2)
    mask = cv2.warpAffine(aligned_face_mask(512), inverse, (512, 512))
    assert (mask == 0).mean() > 0.05 and (mask > 0.999).mean() > 0.3
    assert diff[mask == 0].max() == 0  # outside the face mask: the upscaled frame itself
    assert diff[mask > 0.999].mean() < 2.0  # the face, warped to 512 and back: bilinear vs Lanczos


def test_restorer_blend_fallback_and_streaming(face_frame):
    from edtalk.crop_geometry import face_template
    from edtalk.face_sr import FaceRestorer, five_points

    faces = np.stack([face_frame[:, :, ::-1].copy()] * 2)
    faces = np.stack([np.pad(f, ((128, 128), (128, 128), (0, 0))) for f in faces])  # (2, 512, 512, 3)
    assert np.array_equal(FaceRestorer(_Constant(-1.0), blend=0.0).restore_faces(faces), faces)
    assert (FaceRestorer(_Constant(-1.0), blend=1.0).restore_faces(faces) == 0).all()
    with pytest.raises(ValueError):
        FaceRestorer(_Constant(), blend=1.5)

    restorer = FaceRestorer(_Constant(), batch_size=2)
    template_points = five_points(face_template())
    assert np.allclose(restorer.points_for(None, (256, 256, 3)), template_points)  # nothing seen yet
    seen = face_template() + 3.0
    restorer.points_for(seen, (256, 256, 3))
    assert np.allclose(restorer.points_for(None, (256, 256, 3)), five_points(seen))  # the previous frame's
    restorer.reset()

    frames = np.stack([face_frame, face_frame[:, ::-1], face_frame])
    marks = [face_template(), None, face_template()]
    whole = restorer.restore(frames, marks)
    restorer.reset()
    streamed = np.stack(list(restorer.stream(iter(frames), iter(marks))))
    assert whole.shape == (3, 512, 512, 3) and np.array_equal(whole, streamed)
    aligned = FaceRestorer(_Constant(), return_aligned=True).restore(frames[:1], [None])
    assert aligned.shape == (1, 512, 512, 3)


@pytest.mark.slow  # one GFPGAN forward, ~6 s on 2 CPU cores
def test_restorer_with_gfpgan(gfpgan, face_frame):
    """The real network through the whole path: a 256 px frame becomes a 512 px frame with a new face."""
    from edtalk.crop_geometry import face_template
    from edtalk.face_sr import FaceRestorer

    out = FaceRestorer(gfpgan).restore(face_frame[None], [face_template()])
    import cv2

    background = cv2.resize(face_frame, (512, 512), interpolation=cv2.INTER_LANCZOS4)
    diff = np.abs(out[0].astype(int) - background.astype(int))
    assert out.shape == (1, 512, 512, 3) and diff[:20, :20].max() == 0 and diff[200:312, 200:312].mean() > 10


def test_restorer_detects_landmarks(face_frame):
    """Without landmarks the restorer finds them with our aligner; a frame without a face uses the previous one's."""
    from edtalk.crop_geometry import face_template
    from edtalk.face_align import FaceAligner
    from edtalk.face_sr import FaceRestorer, five_points, rendered_landmarks

    aligner = FaceAligner()
    found = rendered_landmarks(aligner, face_frame)
    assert found is not None and found.shape == (68, 2)
    assert np.abs(five_points(found) - five_points(face_template())).max() < 25  # a roughly aligned crop
    blank = np.full_like(face_frame, 128)
    assert rendered_landmarks(aligner, blank) is None
    restorer = FaceRestorer(_Constant(), batch_size=2, aligner=aligner)
    out = list(restorer.stream(iter([face_frame, blank, face_frame])))
    assert len(out) == 3 and all(o.shape == (512, 512, 3) for o in out)
    assert np.array_equal(out[0], out[2])  # same frame, same points
    assert np.allclose(restorer.points_for(None, face_frame.shape), five_points(found))
