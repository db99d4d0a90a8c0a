"""Motion templates: a driving clip saved once as coefficients drives renders exactly as the clip does;
wrong, corrupt and newer files fail with one line."""

import logging
import re
import zipfile

import numpy as np
import pytest

import demo_EDTalk_A
import demo_lip_pose
from edtalk.errors import EDTalkError
from edtalk.motion_template import VERSION, MotionTemplate, TemplateError, load_template, save_template
from edtalk.pipeline import TalkingHeadPipeline

from .test_demos import POSE, SOURCE, SPEECH, ckpt_dir, first_frames_clip, probe  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The first 3 frames of the pose video, with no audio track."""
    return first_frames_clip(tmp_path_factory.mktemp("media"), 3)


@pytest.fixture(scope="module")
def full_pipe(ckpt_dir):  # noqa: F811
    return TalkingHeadPipeline(ckpt_dir, model="full", device="cpu", crop=False, progress=False)


def frames_of(pipe, **drivers):
    with pipe.render(SOURCE, **drivers) as result:
        return np.concatenate(list(result.frames))


def test_a_template_renders_the_frames_of_its_clip_for_mouth_pose_and_expression(full_pipe, clip, tmp_path):
    path = tmp_path / "clip.npz"
    template = full_pipe.save_motion(clip, path)
    assert (template.frames, template.source, template.model) == (3, clip.name, "full")
    assert {part: c.shape for part, c in template.coefficients.items()} == {
        "lip": (3, 20),
        "pose": (3, 6),
        "exp": (3, 10),
    }
    from_clip = frames_of(full_pipe, lip=clip, pose=clip, exp=clip, audio=SPEECH)
    from_template = frames_of(full_pipe, lip=path, pose=path, exp=path, audio=SPEECH)
    assert from_clip.shape == (3, 256, 256, 3)
    assert np.array_equal(from_template, from_clip)  # same process, same coefficients: bit-identical
    with pytest.raises(EDTalkError, match="carries no soundtrack.*--audio_driving_path"):
        full_pipe.render(SOURCE, lip=path)  # a mouth template and no speech: not a silent video
    # a template read for a shorter output is cut as the clip would be
    head = full_pipe.driver_coefficients(path, ["pose"], limit=2)["pose"]
    assert head.shape == (2, 6) and np.array_equal(head.numpy(), template.coefficients["pose"][:2])


def test_save_motion_flag_then_every_driving_flag_takes_the_template(ckpt_dir, clip, tmp_path, capsys):  # noqa: F811
    common = ["--source_path", SOURCE, "--no_crop", "--ckpt_dir", ckpt_dir]
    template = tmp_path / "head.npz"
    argv = [*common, "--pose_driving_path", clip, "--lip_driving_path", SOURCE, "--save_motion", template]
    assert demo_lip_pose.main(list(map(str, argv))) == 0  # the pose clip is saved, not the mouth image
    out = capsys.readouterr().out
    assert re.search(r"wrote .*head.npz: motion of clip3.mp4 \(lip, pose\), 3 frames, 25 fps", out), out
    assert load_template(template).model == "lip_pose" and sorted(p.name for p in tmp_path.iterdir()) == ["head.npz"]
    video = tmp_path / "out.mp4"
    argv = [*common, "--lip_driving_path", template, "--pose_driving_path", template, "--audio_driving_path", SPEECH]
    assert demo_lip_pose.main(list(map(str, [*argv, "--save_path", video, "--quiet"]))) == 0
    assert probe(video) == (3, 25.0, (256, 256), True)  # the template's length, the audio as soundtrack


def test_round_trip_keeps_every_field(tmp_path):
    coefficients = {"lip": np.ones((4, 20), np.float32), "pose": np.zeros((4, 6), np.float32)}
    save_template(MotionTemplate(coefficients, 25.0, "head.mp4", "lip_pose", "ab12"), tmp_path / "t.npz")
    loaded = load_template(tmp_path / "t.npz")
    assert (loaded.fps, loaded.source, loaded.model, loaded.generator, loaded.frames) == (
        25.0,
        "head.mp4",
        "lip_pose",
        "ab12",
        4,
    )
    assert all(np.array_equal(loaded.coefficients[p], c) for p, c in coefficients.items())
    assert int(np.load(tmp_path / "t.npz")["version"]) == VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary file left


def write_npz(path, **arrays):
    fields = dict(version=np.array(VERSION), fps=np.array(25.0), source=np.array("a.mp4"), model=np.array("full"))
    fields.update(generator=np.array("x"), lip=np.zeros((3, 20), np.float32), pose=np.zeros((3, 6), np.float32))
    fields.update(arrays)
    np.savez(path, **{k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, r"motion template not found: .*t.npz"),
        (lambda p: p.write_bytes(b"not a zip"), r".*t.npz is not a motion template \(not a readable .npz file"),
        (lambda p: np.savez(p, pose=np.zeros((3, 6))), r".*t.npz is not a motion template \(no 'version' field\)"),
        (lambda p: write_npz(p, version=np.array(VERSION + 1)), rf"format version {VERSION + 1}, newer than this"),
        (lambda p: write_npz(p, version=np.array("one")), r"corrupt: 'version' is not a single number"),
        (lambda p: write_npz(p, pose=None), r".*t.npz is corrupt: no pose"),
        (lambda p: write_npz(p, pose=np.zeros((2, 6), np.float32)), r"corrupt: .*not float \(N, dim\) arrays of one"),
        (lambda p: write_npz(p, lip=np.full((3, 20), np.nan, np.float32)), r"corrupt: .*not all finite"),
        (lambda p: write_npz(p, fps=np.array(-1.0)), r"corrupt: frame rate -1"),
    ],
)
def test_a_wrong_corrupt_or_newer_file_is_one_line_naming_it(tmp_path, make, message):
    path = tmp_path / "t.npz"
    make(path)
    with pytest.raises(TemplateError) as error:
        load_template(path)
    assert re.search(message, str(error.value)) and "\n" not in str(error.value), error.value


def test_a_truncated_template_is_unreadable(tmp_path):
    write_npz(tmp_path / "t.npz")
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    assert not zipfile.is_zipfile(tmp_path / "t.npz")
    with pytest.raises(TemplateError, match="is not a motion template"):
        load_template(tmp_path / "t.npz")


def test_a_template_of_another_generator_kind_is_refused_and_other_weights_warned(full_pipe, tmp_path, caplog):
    write_npz(tmp_path / "lp.npz", model=np.array("lip_pose"))
    with pytest.raises(TemplateError, match=r"lp.npz holds motion computed by the lip-pose generator, but this mode"):
        full_pipe.render(SOURCE, audio=SPEECH, pose=tmp_path / "lp.npz")
    write_npz(tmp_path / "other.npz", exp=np.zeros((3, 10), np.float32))
    with caplog.at_level(logging.WARNING):
        pose = full_pipe.driver_coefficients(tmp_path / "other.npz", ["pose", "exp"])
    assert pose["pose"].shape == (3, 6) and "was saved with other full generator weights" in caplog.text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--save_motion", "{tmp}/m.npz"], r"--save_motion saves a driving clip's motion: give --pose_driving_path"),
        (["--pose_driving_path", "{clip}", "--save_motion", "{tmp}/m.mp4"], r"--save_motion must end in .npz"),
        (["--pose_driving_path", "{tmp}/bad.npz"], r"bad.npz is not a motion template"),
    ],
)
def test_bad_template_flags_give_one_line_and_write_nothing(ckpt_dir, clip, tmp_path, capsys, argv, message):  # noqa: F811
    (tmp_path / "bad.npz").write_bytes(b"junk")
    argv = [a.format(tmp=tmp_path, clip=clip) for a in argv]
    common = ["--source_path", str(SOURCE), "--audio_driving_path", str(SPEECH), "--no_crop", "--quiet"]
    code = demo_EDTalk_A.main([*argv, *common, "--save_path", str(tmp_path / "o.mp4"), "--ckpt_dir", str(ckpt_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and re.search(message, err[0]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]
