"""The teacher cache: computed once per (set, generator), equal to the generator's coefficients, reused."""

import json

import numpy as np
import pytest
import torch

from data_preprocess.lmdb_store import LmdbReader, LmdbWriter, encode_jpeg, image_tensor
from edtalk.audio import windows_from_mel
from networks import Generator
from train import teacher


def write_set(root, clips: dict, held_out: tuple = ()):
    """A prepared set without the face pipeline: clips = {name: (frames (T, 256, 256, 3) uint8, mel
    (n, 80) or None)}; names in `held_out` go to lists/val.json and lists/test.json, the others to
    lists/train.json."""
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
    (root / "lists" / "train.json").write_text(json.dumps([n for n in names if n not in held_out]))
    for split in ("val", "test"):
        (root / "lists" / f"{split}.json").write_text(json.dumps([n for n in names if n in held_out]))
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


def test_cache_equals_the_generator_coefficients_and_is_computed_once(small_set, narrow_ckpts, monkeypatch):
    ckpt = narrow_ckpts / "EDTalk.pt"
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
    lip_pose = teacher.load_or_compute(small_set, narrow_ckpts / "EDTalk_lip_pose.pt", torch.device("cpu"))
    assert lip_pose.path != first.path and lip_pose.parts == ("lip", "pose")


def test_a_set_that_gains_clips_gets_only_those_encoded(small_set, narrow_ckpts, monkeypatch):
    ckpt = narrow_ckpts / "EDTalk_lip_pose.pt"
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


def test_coefficient_windows_line_up_with_the_teacher(small_set, narrow_ckpts):
    coefs = teacher.load_or_compute(small_set, narrow_ckpts / "EDTalk_lip_pose.pt", torch.device("cpu"))
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


def test_a_changed_clip_or_an_old_cache_format_is_encoded_again(small_set, narrow_ckpts, monkeypatch):
    ckpt = narrow_ckpts / "EDTalk_lip_pose.pt"
    old = teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    changed = "W011#sad#level_1#002"
    frames = random_frames(np.random.default_rng(7), 2)  # the same name and length, other pictures
    write_set(small_set, {changed: (frames, np.zeros((14, 80), np.float32))})
    encoded = []
    real_encode = Generator.encode
    monkeypatch.setattr(Generator, "encode", lambda self, x: encoded.append(len(x)) or real_encode(self, x))
    new = teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    assert encoded == [2] and sorted(new.names) == sorted(old.names)
    assert not np.allclose(new[changed]["lip"], old[changed]["lip"])
    kept = "M003#happy#level_2#001"
    np.testing.assert_array_equal(new[kept]["lip"], old[kept]["lip"])

    with np.load(new.path) as data:  # a cache of the first format (no version, no stamps)
        arrays = {k: data[k] for k in data.files if k not in ("version", "stamps")}
    np.savez(new.path, **arrays)
    encoded.clear()
    teacher.load_or_compute(small_set, ckpt, torch.device("cpu"))
    assert encoded == [3, 2]


def window_set(tmp_path, length: int = 40):
    """One clip of `length` frames with speech-like mel and a fake teacher cache (pose = frame index)."""
    rng = np.random.default_rng(3)
    mel = rng.uniform(-4, 4, (int(length / 25 * 80) + 4, 80)).astype(np.float32)
    root = write_set(tmp_path / "windows", {"M003#happy#level_2#001": (random_frames(rng, length), mel)})
    pose = np.repeat(np.arange(length, dtype=np.float32)[:, None], 6, axis=1)
    coefs = {"lip": [np.zeros((length, 20), np.float32)], "pose": [pose]}
    teacher.write(tmp_path / "cache.npz", ["M003#happy#level_2#001"], ["-"], coefs)
    return root, teacher.TeacherCoefficients(tmp_path / "cache.npz"), mel


def test_training_windows_carry_the_clips_real_audio_context(tmp_path):
    root, coefs, mel = window_set(tmp_path)
    windows = windows_from_mel(mel, 40)
    data = teacher.CoefficientWindowDataset(root, "train", coefs, window=10, seed=0, context=6)
    starts = set()
    for epoch in range(30):
        item = data[(epoch, 0)]
        start = item["start"]
        starts.add(start)
        assert item["mels"].shape == (22, 1, 80, 16) and item["pose"].shape == (10, 6)
        frames = np.clip(np.arange(start - 6, start + 16), 0, 39)  # padded only beyond the clip's ends
        np.testing.assert_array_equal(item["mels"].numpy(), windows[frames])
    assert any(6 <= s <= 24 for s in starts)  # some windows with real context on both sides


def test_the_pose_style_never_sees_the_predicted_frames(tmp_path):
    from train.motion_stages import PoseWindowDataset

    root, coefs, _ = window_set(tmp_path)
    data = PoseWindowDataset(root, "train", coefs, 10, 0, context=2, history=2, style_dropout=0.0)
    for epoch in range(20):
        item = data[(epoch, 0)]
        start = item["start"]
        outside = np.array([t for t in range(40) if not start <= t < start + 10], np.float32)
        # pose = frame index, so the style's mean and spread are those of the frames outside the window
        np.testing.assert_allclose(item["style"][:6].numpy(), outside.mean(), rtol=1e-5)
        np.testing.assert_allclose(item["style"][6:12].numpy(), outside.std(), rtol=1e-5)
    whole = PoseWindowDataset(root, "train", coefs, 40, 0, context=2, history=2, style_dropout=0.0)
    assert torch.equal(whole[0]["style"], torch.zeros(13))  # nothing outside a whole-clip window: no style


def test_motion_checkpoints_record_the_teachers_fingerprint(narrow_ckpts):
    from edtalk.motion_template import fingerprint
    from networks.audio2pose import Audio2Pose
    from train.motion_stages import Audio2PoseStage

    full, lip_pose = narrow_ckpts / "EDTalk.pt", narrow_ckpts / "EDTalk_lip_pose.pt"
    import edtalk

    gen = edtalk.load_generator(full)
    heads = [gen.enc, gen.fc, gen.lip_fc, gen.pose_fc, gen.exp_fc]
    assert teacher.generator_fingerprint(full) == fingerprint(heads) != teacher.generator_fingerprint(lip_pose)
    stage = Audio2PoseStage()
    stage.fingerprint = teacher.generator_fingerprint(full)
    state = stage.state({"audio2pose": Audio2Pose()})
    assert state["generator_fingerprint"] == fingerprint(heads) and "audio2pose" in state
