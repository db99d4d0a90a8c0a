"""The teacher cache: computed once per (set, generator), equal to the generator's coefficients, reused."""

import json

import numpy as np
import pytest
import torch

from data_preprocess.dataset import image_tensor
from data_preprocess.lmdb_store import LmdbReader, LmdbWriter, encode_jpeg
from edtalk.audio import windows_from_mel
from networks import Generator
from train import teacher


def write_set(root, clips: dict, test: tuple = ()):
    """A prepared set without the face pipeline: clips = {name: (frames (T, 256, 256, 3) uint8, mel
    (n, 80) or None)}; names in `test` go to lists/test.json, the others to lists/train.json."""
    writer = LmdbWriter(root / "lmdb", 25.0, 256, 5.0)
    for name, (frames, mel) in clips.items():
        t = len(frames)
        landmarks = np.full((t, 68, 2), np.nan, np.float32)
        info = {"video": name, "start_frame": 0, "group": name.split("#")[0], "has_audio": mel is not None}
        writer.write_clip(name, [encode_jpeg(f) for f in frames], landmarks, np.zeros((t, 4)), mel, info)
        writer.finish_video(name, [name])
    names = writer.finalize()
    writer.close()
    (root / "lists").mkdir(exist_ok=True)
    (root / "lists" / "train.json").write_text(json.dumps([n for n in names if n not in test]))
    (root / "lists" / "test.json").write_text(json.dumps([n for n in names if n in test]))
    return root


def random_frames(rng, t):
    """(t, 256, 256, 3) uint8: a smooth random image per frame (JPEG keeps it nearly intact)."""
    small = rng.integers(0, 256, (t, 16, 16, 3), dtype=np.uint8)
    return small.repeat(16, axis=1).repeat(16, axis=2)


@pytest.fixture
def small_set(tmp_path):
    rng = np.random.default_rng(0)
    clips = {
        "M003#happy#level_2#001": (random_frames(rng, 3), rng.uniform(-4, 4, (20, 80)).astype(np.float32)),
        "W011#sad#level_1#002": (random_frames(rng, 2), rng.uniform(-4, 4, (14, 80)).astype(np.float32)),
    }
    return write_set(tmp_path / "set", clips)


def test_cache_equals_the_generator_coefficients_and_is_computed_once(small_set, synthetic_ckpts, monkeypatch):
    ckpt = synthetic_ckpts / "EDTalk.pt"
    encoded = []
    real_encode = Generator.encode
    monkeypatch.setattr(Generator, "encode", lambda self, x: encoded.append(len(x)) or real_encode(self, x))
    first = teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    assert sum(encoded) == 5 and first.path == teacher.cache_path(small_set, ckpt) and first.path.is_file()
    assert first.path.parent == small_set and first.parts == ("lip", "pose", "exp")

    import edtalk

    gen, reader = edtalk.load_generator(ckpt), LmdbReader(small_set / "lmdb")
    for name in reader.names():
        frames = torch.stack([image_tensor(reader.frame(name, t)) for t in range(reader.length(name))])
        h = real_encode(gen, frames)
        for part, dim in (("lip", 20), ("pose", 6), ("exp", 10)):
            cached = first[name][part]
            assert cached.shape == (len(frames), dim) and cached.dtype == np.float32
            torch.testing.assert_close(torch.from_numpy(cached), gen.coefficients(h, part), atol=1e-5, rtol=1e-4)

    encoded.clear()
    stamp = first.path.stat().st_mtime_ns
    again = teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    assert encoded == [] and first.path.stat().st_mtime_ns == stamp
    for name in again.names:
        np.testing.assert_array_equal(again[name]["exp"], first[name]["exp"])

    # another generator file gets its own cache; the lip-pose teacher has no expression part
    lip_pose = teacher.load_or_compute(small_set, synthetic_ckpts / "EDTalk_lip_pose.pt", torch.device("cpu"))
    assert lip_pose.path != first.path and lip_pose.parts == ("lip", "pose")


def test_a_set_that_gains_clips_gets_only_those_encoded(small_set, synthetic_ckpts, monkeypatch):
    ckpt = synthetic_ckpts / "EDTalk_lip_pose.pt"
    old = teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    rng = np.random.default_rng(1)
    write_set(small_set, {"M005#angry#level_3#003": (random_frames(rng, 1), None)})  # appended to the same lmdb
    encoded = []
    real_encode = Generator.encode
    monkeypatch.setattr(Generator, "encode", lambda self, x: encoded.append(len(x)) or real_encode(self, x))
    new = teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    assert encoded == [1] and len(new) == 3
    for name in old.names:
        np.testing.assert_array_equal(new[name]["pose"], old[name]["pose"])


def test_missing_or_foreign_generator_is_a_one_line_error(small_set, tmp_path):
    with pytest.raises(SystemExit, match="nope.pt: file not found"):
        teacher.load_or_compute(small_set, tmp_path / "nope.pt", torch.device("cpu"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"something": torch.zeros(1)}, foreign)
    with pytest.raises(SystemExit, match="foreign.pt"):
        teacher.load_or_compute(small_set, foreign, torch.device("cpu"))


def test_emotion_labels_from_mead_names():
    assert teacher.emotion_label("M003#happy#level_2#001") == 4
    assert teacher.emotion_label("M003#surprised#level_3#014#2") == 7
    assert teacher.emotion_label("M003_video_front_disgusted_level_2_001") == 2
    assert teacher.emotion_label("WDA_BarackObama_000#3") == -1
    assert teacher.emotion_label("sadness_interview") == -1  # a word, not a MEAD field


def test_coefficient_windows_line_up_with_the_teacher(small_set, synthetic_ckpts):
    coefs = teacher.load_or_compute(small_set, synthetic_ckpts / "EDTalk_lip_pose.pt", torch.device("cpu"))
    data = teacher.CoefficientWindowDataset(small_set, "train", coefs, window=2, seed=3)
    assert len(data) == 2
    reader = LmdbReader(small_set / "lmdb")
    for index, name in enumerate(data.names):
        item = data[(5, index)]
        start = item["start"]
        assert item["mels"].shape == (2, 1, 80, 16) and item["pose"].shape == (2, 6) and "exp" not in item
        expected = windows_from_mel(reader.mel(name), reader.length(name))[start : start + 2]
        np.testing.assert_array_equal(item["mels"].numpy(), expected)
        np.testing.assert_array_equal(item["lip"].numpy(), coefs[name]["lip"][start : start + 2])
        assert item["emotion"] == teacher.emotion_label(name) >= 0
    assert len(teacher.CoefficientWindowDataset(small_set, "train", coefs, window=3)) == 1  # the 2-frame clip is out
