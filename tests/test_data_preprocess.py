"""Pre-processing raw videos into the lmdb training set, and the datasets that read it."""

import json
import logging
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from data_preprocess.lmdb_store import LmdbReader, decode_jpeg, frame_key, group_of
from data_preprocess.prepare_dataset import PrepareConfig, clip_ranges, prepare, split_names
from data_preprocess.sources import find_videos
from edtalk import audio as audio_io
from edtalk.crop_geometry import warp
from edtalk.video_io import iter_frames
from train.datasets import AudioWindowDataset, CrossPairDataset, PairDataset, swap_mouth

from .conftest import MEDIA

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CFG = PrepareConfig(test_fraction=0.5)


def ffmpeg(*args):
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    """Four talking videos made from the reference clip with simple augmentations, one faceless
    video and one truncated file."""
    raw = tmp_path_factory.mktemp("raw")
    pose, speech = MEDIA / "pose_source1.mp4", MEDIA / "speech_16k.wav"
    (raw / "sub").mkdir()
    # 10 s with the speech looped as its own audio track -> 2 clips
    ffmpeg(
        "-i",
        pose,
        "-i",
        speech,
        "-filter_complex",
        "[1:a]aloop=loop=3:size=55016[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-shortest",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        raw / "anna.mp4",
    )
    # mirrored, smaller, letter-boxed, 30 fps, 4 s, no audio
    ffmpeg("-i", pose, "-t", 4, "-vf", "hflip,scale=200:200,pad=320:240:60:20,fps=30", "-an", raw / "sub" / "bob.mp4")
    # brighter, 6 s -> one 5 s clip (the 1 s tail is dropped), audio in a separate wav beside it
    ffmpeg("-i", pose, "-ss", 2, "-t", 6, "-vf", "eq=brightness=0.08", "-an", raw / "carl.mp4")
    t = np.arange(6 * 16000) / 16000
    soundfile.write(raw / "carl.wav", (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32), 16000)
    ffmpeg("-f", "lavfi", "-i", "color=gray:s=128x128:r=25", "-t", 2, raw / "blank.mp4")
    (raw / "broken.mp4").write_bytes((raw / "anna.mp4").read_bytes()[:4000])
    return raw


@pytest.fixture(scope="module")
def dataset(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    counts = prepare(raw_dir, out, CFG, progress=False)
    return out, counts


def test_clip_ranges():
    assert clip_ranges(250, CFG) == [(0, 125), (125, 250)]
    assert clip_ranges(100, CFG) == [(0, 100)]
    assert clip_ranges(150, CFG) == [(0, 125)]  # 1 s tail dropped
    assert clip_ranges(210, CFG) == [(0, 125), (125, 210)]  # 3.4 s tail kept
    assert clip_ranges(20, CFG) == []


def test_layouts_are_detected(tmp_path):
    (tmp_path / "Original_video").mkdir()
    (tmp_path / "audio").mkdir()
    (tmp_path / "Original_video" / "M003#angry#level_1#001.mp4").touch()
    (tmp_path / "audio" / "M003#angry#level_1#001.wav").touch()
    (videos,) = find_videos(tmp_path)
    assert videos.stem == "M003#angry#level_1#001" and videos.audio == tmp_path / "audio" / "M003#angry#level_1#001.wav"


def test_mead_as_downloaded_is_named_by_actor_emotion_and_level(tmp_path):
    for view in ("front", "left_30"):
        for actor, emotion, level in (("M003", "happy", 2), ("W009", "sad", 1)):
            video = tmp_path / actor / "video" / view / emotion / f"level_{level}" / "001.mp4"
            video.parent.mkdir(parents=True)
            video.touch()
    audio = tmp_path / "M003" / "audio" / "happy" / "level_2" / "001.m4a"
    audio.parent.mkdir(parents=True)
    audio.touch()
    videos = {v.stem: v for v in find_videos(tmp_path)}
    assert sorted(videos) == [
        "M003#happy#level_2#001",
        "M003#happy#level_2#001#left_30",
        "W009#sad#level_1#001",
        "W009#sad#level_1#001#left_30",
    ]
    assert videos["M003#happy#level_2#001"].audio == audio and videos["W009#sad#level_1#001"].audio is None
    assert group_of(videos["M003#happy#level_2#001#left_30"].stem) == "M003"  # the split keeps an actor together


def test_lmdb_layout(dataset):
    out, counts = dataset
    assert counts == {
        "done": 3,
        "skipped": 0,
        "failed": 2,
        "clips": 4,
        "train": counts["train"],
        "val": counts["val"],
        "test": counts["test"],
    }
    reader = LmdbReader(out / "lmdb")
    assert reader.meta() == {"format": "edtalk-lmdb", "version": 1, "fps": 25.0, "size": 256, "clip_seconds": 5.0}
    assert sorted(reader.names()) == ["anna#1", "anna#2", "bob", "carl"]
    assert reader._get(b"length") == b"4"
    assert reader._get(b"anna#1-length") == b"0000125"
    assert {n: reader.length(n) for n in reader.names()} == {"anna#1": 125, "anna#2": 125, "bob": 100, "carl": 125}
    for name in reader.names():
        frames = reader.length(name)
        assert reader.frame(name, frames - 1).shape == (256, 256, 3)
        landmarks = reader.landmarks(name)
        assert landmarks.shape == (frames, 68, 2) and np.isfinite(landmarks).all(axis=(1, 2)).mean() > 0.9
        boxes = reader.mouth_boxes(name)
        assert boxes.shape == (frames, 4) and (boxes[:, 2] > boxes[:, 0]).all()
        mel = reader.mel(name)
        assert (mel is None) == (name == "bob") and (mel is None or mel.shape == (1 + frames * 640 // 200, 80))
    lists = {s: json.loads((out / "lists" / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert sorted(lists["train"] + lists["val"] + lists["test"]) == sorted(reader.names())
    groups = {s: {n.split("#")[0] for n in lists[s]} for s in lists}
    assert not (groups["train"] | groups["val"]) & groups["test"]


def test_val_comes_from_the_training_speakers_never_from_the_test_speakers():
    names = [f"{actor}#{emotion}#level_1#{clip:03d}" for actor in range(40) for emotion in "ab" for clip in range(20)]
    lists = split_names(names, test_fraction=0.2, val_fraction=0.1)
    assert sorted(lists["train"] + lists["val"] + lists["test"]) == sorted(names)
    assert not set(lists["val"]) & set(lists["train"]) and not set(lists["val"]) & set(lists["test"])
    groups = {s: {group_of(n) for n in items} for s, items in lists.items()}
    assert not groups["val"] & groups["test"] and groups["val"] <= groups["train"]
    assert 4 <= len(groups["test"]) <= 14  # about 8 of 40 speakers
    assert 0.05 < len(lists["val"]) / (len(lists["train"]) + len(lists["val"])) < 0.15
    assert split_names(names, 0.2, 0.1) == lists  # deterministic
    assert split_names(names, 0.2, 0.0)["val"] == []


def test_frames_audio_and_landmarks_are_aligned(dataset, raw_dir):
    out, _ = dataset
    reader = LmdbReader(out / "lmdb")
    info = reader.info("anna#2")
    assert info["start_frame"] == 125 and info["video"] == "anna.mp4"
    source = [f for i, f in enumerate(iter_frames(raw_dir / "anna.mp4")) if i in (125, 200)]
    for frame, index in zip(source, (0, 75)):
        expected = warp(frame, np.array(info["crop_matrix"]))
        assert np.abs(reader.frame("anna#2", index).astype(int) - expected).mean() < 3  # JPEG only
    wav = audio_io.load_wav(raw_dir / "anna.mp4")
    piece = wav[125 * 640 : 250 * 640]
    piece = np.pad(piece, (0, 125 * 640 - len(piece)))  # the AAC track ends a little before the video
    np.testing.assert_allclose(reader.mel("anna#2"), audio_io.melspectrogram(piece), atol=1e-5)
    mouth = reader.landmarks("anna#2")[:, 48:68]
    boxes = reader.mouth_boxes("anna#2")
    np.testing.assert_allclose(boxes[:, :2], mouth.min(axis=1) - 5)


def test_rerun_skips_finished_videos(dataset, raw_dir, caplog):
    out, _ = dataset
    before = LmdbReader(out / "lmdb").names()
    with caplog.at_level(logging.INFO, logger="prepare_dataset"):
        counts = prepare(raw_dir, out, CFG, progress=False)
    assert (counts["done"], counts["skipped"], counts["failed"], counts["clips"]) == (0, 3, 2, 4)
    assert "anna.mp4: already done, skipped" in caplog.text
    assert "skipped broken.mp4: cannot read video" in caplog.text
    assert "skipped blank.mp4: no face found" in caplog.text
    assert LmdbReader(out / "lmdb").names() == before


def test_swap_mouth():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    x = np.zeros_like(y)
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48] = (100, 110), (160, 110)
    lm[48:68] = np.array([[115 + 2 * k, 175 + (k % 5)] for k in range(20)])
    lm[60:68] = (135, 178)
    out = swap_mouth(x, lm, y, lm)
    (x0, y0), (x1, y1) = lm[48:68].min(0).astype(int) - 5, lm[48:68].max(0).astype(int) + 5
    box = (slice(y0, y1), slice(x0, x1))
    assert (out[box] == 0).all()  # the mouth region comes from x
    outside = np.ones(y.shape[:2], bool)
    outside[box] = False
    assert (out[outside] == y[outside]).all()


@pytest.mark.parametrize("workers", [0, 2])
def test_datasets_through_a_multi_worker_loader(dataset, workers):
    out, _ = dataset
    names = LmdbReader(out / "lmdb").names()
    (out / "lists" / "all.json").write_text(json.dumps(names))
    pairs = DataLoader(PairDataset(out, "all", seed=0), batch_size=2, num_workers=workers)
    batch = next(iter(pairs))
    assert batch["source"].shape == batch["target"].shape == (2, 3, 256, 256)
    assert batch["source"].min() >= -1 and batch["source"].max() <= 1

    cross = next(iter(DataLoader(CrossPairDataset(out, "all", seed=0), batch_size=2, num_workers=workers)))
    images = {"img_a_identity", "img_a", "img_b_identity", "img_b", "imagea_b", "imageb_a"}
    assert set(cross) == images | {"index"} and cross["index"].tolist() == [0, 1]
    assert all(cross[k].shape == (2, 3, 256, 256) for k in images)

    audio = AudioWindowDataset(out, "all", seed=0, window=5, sync_negatives=True)
    assert sorted(audio.names) == ["anna#1", "anna#2", "carl"]  # bob has no audio
    item = audio[0]
    reader = LmdbReader(out / "lmdb")
    windows = audio_io.windows_from_mel(reader.mel(audio.names[0]), reader.length(audio.names[0]))
    assert torch.equal(item["mels"], torch.from_numpy(windows[item["start"] : item["start"] + 5]))
    expected_frame = torch.from_numpy(decode_jpeg(reader._get(frame_key(audio.names[0], item["start"])))).float()
    assert torch.allclose((item["frames"][0].permute(1, 2, 0) + 1) * 127.5, expected_frame, atol=1e-3)
    batch = next(iter(DataLoader(audio, batch_size=3, num_workers=workers)))
    assert batch["frames"].shape == (3, 5, 3, 256, 256) and batch["mels"].shape == (3, 5, 1, 80, 16)
    assert batch["sync_mel"].shape == (3, 1, 80, 16)
    assert batch["mouth_boxes"].shape == batch["face_boxes"].shape == (3, 5, 4)


def test_seeded_samples_are_reproducible(dataset):
    out, _ = dataset
    a, b = PairDataset(out, "train", seed=3), PairDataset(out, "train", seed=3)
    assert torch.equal(a[0]["source"], b[0]["source"]) and torch.equal(a[0]["target"], b[0]["target"])
    assert torch.equal(a[(0, 0)]["target"], a[0]["target"])  # a bare index is epoch 0
    assert not torch.equal(a[(1, 0)]["target"], a[0]["target"])  # another epoch, other frames
