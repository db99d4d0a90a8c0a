"""LSE-C / LSE-D: our SyncNet v2 and evaluate() against the official run on synthetic weights (fixture).

tests/fixtures/syncnet/README.md describes the fixture and the official computation.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edtalk.errors import CheckpointError, EDTalkError
from edtalk.video_io import iter_frames
from evaluation.sync import (
    ExpertSyncScorer,
    SyncNetScorer,
    _mel_filterbank,
    face_track_crops,
    face_windows_bgr,
    load_syncnet,
    mfcc,
    offset_search,
    to_pcm16,
)
from networks.lipsync_expert import SyncNet
from networks.syncnet import SyncNetV2

from .conftest import MEDIA
from .synthetic_syncnet_weights import FIXTURES, checksum_mismatches, make_state_dict, read_table

REF = FIXTURES / "syncnet_ref.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(REF) as data:
        return dict(data)


@pytest.fixture(scope="module")
def state() -> dict:
    return make_state_dict()


@pytest.fixture(scope="module")
def weights(syncnet_ckpt) -> Path:
    return syncnet_ckpt


def fixture_inputs(ref: dict) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's frames as RGB (T, 224, 224, 3) and its audio as float32 in [-1, 1], as our API takes them."""
    bgr = np.cumsum(ref["frames_bgr_delta"], axis=0, dtype=np.uint8)
    return np.ascontiguousarray(bgr[..., ::-1]), ref["audio_int16"].astype(np.float32) / 32768


def test_synthetic_weights_match_checksums_and_table(state):
    assert checksum_mismatches(state) == []
    tampered = dict(state, **{"netfclip.3.bias": state["netfclip.3.bias"] + 1e-3})
    assert checksum_mismatches(tampered) == ["netfclip.3.bias"]
    ours = {k: tuple(v.shape) for k, v in SyncNetV2().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours == dict(read_table())


def test_mfcc_equals_official(ref):
    assert np.abs(mfcc(ref["audio_int16"]) - ref["mfcc"]).max() < 1e-8
    # [-1, 1] input goes back to the exact 16-bit values the official code reads
    assert np.array_equal(to_pcm16(ref["audio_int16"].astype(np.float32) / 32768), ref["audio_int16"])
    assert np.array_equal(to_pcm16(ref["audio_int16"]), ref["audio_int16"])  # int16 is already on that scale
    assert np.array_equal(to_pcm16(np.array([1.5, -1.5, 0.5 / 32768])), [32767, -32768, 0])  # clipped, rounded
    # filter j rises from FFT bin edge j to edge j + 1 (edges 0, 2, 4, 7, 10, 13, ... in the README)
    peaks = [int(np.argmax(row)) for row in _mel_filterbank()]
    assert peaks[:5] == [2, 4, 7, 10, 13] and peaks[-1] == 231
    short = mfcc(np.ones(100))  # shorter than one frame: one zero-padded frame, as python_speech_features
    assert short.shape == (13, 1)


def test_parity_with_official_evaluate(ref, weights):
    frames, audio = fixture_inputs(ref)
    scorer = SyncNetScorer(weights)
    im_feat, cc_feat, _ = scorer.embed(frames, audio)
    assert np.abs(im_feat.numpy() - ref["im_feat"]).max() < 1e-4
    assert np.abs(cc_feat.numpy() - ref["cc_feat"]).max() < 1e-4
    result = offset_search(im_feat, cc_feat)
    assert np.abs(result.dists - ref["dists"]).max() < 2e-4
    assert np.abs(result.mdist - ref["mdist"]).max() < 2e-4
    assert result.offset == int(ref["offset"])
    assert abs(result.conf - float(ref["conf"])) < 1e-4
    assert abs(result.min_dist - float(ref["min_dist"])) < 1e-4


def test_window_count_follows_shorter_stream(ref, weights):
    frames, audio = fixture_inputs(ref)
    scorer = SyncNetScorer(weights)
    # 20 frames with all the audio, and all frames with 12 frames of audio: L - 5 windows each
    im_feat, _, _ = scorer.embed(frames[:20], audio)
    assert len(im_feat) == 15
    im_feat, cc_feat, _ = scorer.embed(frames, audio[: 12 * 640 + 639])
    assert len(im_feat) == len(cc_feat) == 7
    assert np.abs(im_feat.numpy() - ref["im_feat"][:7]).max() < 1e-4  # same windows as the full clip
    with pytest.raises(EDTalkError, match="too short"):
        scorer.embed(frames[:5], audio)


@pytest.mark.parametrize("lag", [3, -4])
def test_offset_search_finds_known_audio_shift(lag):
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.normal(size=(40, 64)).astype(np.float32))
    # audio window j matches video window j + lag, i.e. the best audio for video window i is i - lag
    audio = torch.roll(video, -lag, dims=0) + 0.01 * torch.from_numpy(rng.normal(size=(40, 64)).astype(np.float32))
    result = offset_search(video, audio, vshift=6)
    assert result.offset == lag
    assert result.dists.shape == (40, 13)
    assert result.conf > 1.0 and result.min_dist < result.mdist[6]


@pytest.mark.parametrize("zip_format,counters", [(False, False), (True, True)])
def test_loader_accepts_both_formats_with_or_without_counters(tmp_path, state, zip_format, counters):
    if counters:
        state = dict(
            state,
            **{k.replace("running_mean", "num_batches_tracked"): torch.tensor(0) for k in state if "running_mean" in k},
        )
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    net = load_syncnet(path)
    assert not net.training
    assert torch.equal(net.state_dict()["netcnnlip.0.weight"], state["netcnnlip.0.weight"])


def test_loader_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*missing.model"):
        load_syncnet(tmp_path / "missing.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="garbage.model"):
        load_syncnet(garbage)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"gen": {"w": torch.zeros(1)}}, wrapped)
    with pytest.raises(CheckpointError, match="wrapped.pt is not a SyncNet state dict"):
        load_syncnet(wrapped)
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="other.pt is not syncnet_v2.model: unexpected key conv.weight"):
        load_syncnet(other)


def test_face_track_crop_geometry():
    # a frame whose pixel values encode their column (R) and row (G) / 2
    h, w = 300, 400
    ys, xs = np.mgrid[0:h, 0:w]
    frame = np.stack([xs // 2, ys // 2, np.zeros_like(xs)], axis=-1).astype(np.uint8)
    box = np.array([[150.0, 100.0], [250.0, 200.0]])  # landmarks spanning x 150..250, y 100..200: s = 50
    landmarks = np.tile(np.linspace(box[0], box[1], 68)[None], (15, 1, 1))
    landmarks[3] = np.nan  # a frame without a face borrows its neighbour's box
    crops = face_track_crops(np.repeat(frame[None], 15, axis=0), landmarks)
    assert crops.shape == (15, 224, 224, 3)
    # the crop spans columns cx - 1.4 s .. cx + 1.4 s = 130..270 and rows cy - s .. cy + 1.8 s = 100..240
    assert abs(int(crops[3, 112, 0, 0]) * 2 - 130) <= 3 and abs(int(crops[3, 112, -1, 0]) * 2 - 270) <= 3
    assert abs(int(crops[3, 0, 112, 1]) * 2 - 100) <= 3 and abs(int(crops[3, -1, 112, 1]) * 2 - 240) <= 3
    with pytest.raises(EDTalkError, match="no face"):
        face_track_crops(frame[None], np.full((1, 68, 2), np.nan))


def test_fixture_is_what_the_readme_says(ref):
    frames, _ = fixture_inputs(ref)
    meta = json.loads(str(ref["meta"]))
    assert meta["weights_seed"] == 20250301 and frames.shape == (85, 224, 224, 3)


def test_expert_scorer_runs_on_our_lip_sync_expert(tmp_path, ref):
    torch.manual_seed(0)
    path = tmp_path / "expert.pt"
    torch.save({"syncnet": SyncNet().state_dict(), "step": 1}, path)
    frames = np.stack([cv2.resize(f, (256, 256)) for f in fixture_inputs(ref)[0][:8]])
    landmarks = np.tile(np.array([[70.0, 60.0], [190.0, 210.0]])[None, [0] * 34 + [1] * 34], (8, 1, 1))
    scores = ExpertSyncScorer(path).score(frames, fixture_inputs(ref)[1], landmarks, vshift=3)
    assert set(scores) == {"expert-offset", "expert-sim", "expert-conf"}
    assert -3 <= scores["expert-offset"] <= 3 and -1 <= scores["expert-sim"] <= 1 and scores["expert-conf"] >= 0
    torch.save({"gen": {}}, tmp_path / "gen.pt")
    with pytest.raises(CheckpointError, match="gen.pt is not a lip-sync expert checkpoint"):
        ExpertSyncScorer(tmp_path / "gen.pt")


def test_frames_of_another_size_are_resized_as_wav2lip_does(ref):
    decoded = np.stack([f for f, _ in zip(iter_frames(MEDIA / "pose_source1.mp4"), range(85))])  # 256x256 RGB
    ours = face_windows_bgr(decoded)[0].permute(1, 2, 3, 0).numpy()  # (T, 224, 224, 3) BGR floats
    official = np.cumsum(ref["frames_bgr_delta"], axis=0, dtype=np.uint8).astype(np.float32)
    assert ours.shape == official.shape
    assert np.abs(ours - official).max() <= 1 and np.abs(ours - official).mean() < 0.01
