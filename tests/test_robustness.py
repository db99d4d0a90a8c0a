"""What a new user meets on day one: honest soundtracks and lengths, clean stops on SIGINT and
SIGTERM, save paths checked before any work, and progress for every long step."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
import torch

import demo_EDTalk_A
import demo_EDTalk_V
import demo_lip_pose
from edtalk.backends import resolve_backend
from edtalk.device import precision_name, resolve_precision
from edtalk.video_io import MediaError, VideoWriter, check_save_path, iter_frames

from .conftest import MEDIA, ROOT
from .test_demos import POSE, SOURCE, SPEECH, ckpt_dir, probe, short_clip  # noqa: F401  (fixtures)
from .test_render_many import template

SPEECH_LONG = MEDIA / "speech_16k.wav"  # 3.4 s


def duration(path):
    """The container's duration in seconds (the longer of its streams)."""
    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory):
    """1 s of the pose video with 1 s of speech as its own audio track."""
    path = tmp_path_factory.mktemp("talk") / "talk.mp4"
    with VideoWriter(path, audio_path=SPEECH_LONG) as writer:
        for _, frame in zip(range(25), iter_frames(POSE)):
            writer.write(frame)
    return path


def lip_pose(*args, ckpt_dir, quiet=True):  # noqa: F811
    argv = [*map(str, args), "--ckpt_dir", str(ckpt_dir), "--no_crop"] + (["--quiet"] if quiet else [])
    return demo_lip_pose.main(argv)


# ---- honest outputs --------------------------------------------------------------------------------


def test_mouth_video_mode_uses_its_own_audio_and_length(tmp_path, ckpt_dir, talking_clip, capsys):  # noqa: F811
    out = tmp_path / "own.mp4"
    assert lip_pose("--lip_driving_path", talking_clip, "--save_path", out, ckpt_dir=ckpt_dir, quiet=False) == 0
    assert probe(out) == (25, 25.0, (256, 256), True)
    assert abs(duration(out) - 1.0) < 0.1  # the soundtrack is cut to the video, not the speech's 3.4 s
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    cpu = torch.device("cpu")
    backend, precision = resolve_backend("auto", cpu), precision_name(resolve_precision("auto", cpu))
    assert summary == (
        f"wrote {out}: 25 frames, 1.00 s, 256x256, 25 fps, soundtrack: talk.mp4, backend: {backend}, "
        f"precision: {precision}"
    )


def test_silent_mouth_video_gives_a_silent_output_and_says_so(tmp_path, ckpt_dir, short_clip, caplog):  # noqa: F811
    out = tmp_path / "silent.mp4"
    assert lip_pose("--lip_driving_path", short_clip, "--save_path", out, ckpt_dir=ckpt_dir) == 0
    assert probe(out) == (6, 25.0, (256, 256), False)
    assert "has no audio track and no audio was given: the video is silent" in caplog.text


def test_a_longer_soundtrack_is_cut_to_the_video(tmp_path, ckpt_dir, short_clip):  # noqa: F811
    out = tmp_path / "cut.mp4"
    args = ["--lip_driving_path", short_clip, "--audio_driving_path", SPEECH_LONG, "--save_path", out]
    assert lip_pose(*args, ckpt_dir=ckpt_dir) == 0
    assert probe(out) == (6, 25.0, (256, 256), True)
    assert abs(duration(out) - 0.24) < 0.1


def test_a_soundtrack_ffmpeg_cannot_read_is_an_error_and_no_file(tmp_path):
    (tmp_path / "not_audio.wav").write_text("not audio")
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match=r"ffmpeg could not write .*out\.mp4"):
        with VideoWriter(out, audio_path=tmp_path / "not_audio.wav", num_frames=6) as writer:
            writer.write(np.zeros((6, 64, 64, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_audio.wav"]


# ---- save paths ------------------------------------------------------------------------------------


def bad_save_paths(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder.mp4").mkdir()
    cases = {
        "parent is a file": (tmp_path / "a_file" / "out.mp4", r"a_file is a file, not a folder"),
        "missing folder": (tmp_path / "missing" / "out.mp4", r"does not exist: .*missing"),
        "an existing folder": (tmp_path / "a_folder.mp4", r"a_folder.mp4 is a folder"),
        "not mp4": (tmp_path / "out.avi", r"must end in \.mp4"),
        "read-only place": (Path("/proc/edtalk_out.mp4"), r"cannot write in /proc"),
    }
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        (tmp_path / "ro").mkdir(mode=0o555)
        cases["read-only folder"] = (tmp_path / "ro" / "out.mp4", r"cannot write in .*ro")
    return cases


def test_every_bad_save_path_is_one_line_before_any_work(tmp_path, capsys):
    for name, (path, message) in bad_save_paths(tmp_path).items():
        # the checkpoint folder does not exist either: the save path is checked first
        code = demo_lip_pose.main(["--save_path", str(path), "--ckpt_dir", str(tmp_path / "no_ckpts"), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and re.search(message, err[0]), (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder.mp4"] + (
        [] if os.geteuid() == 0 else ["ro"]
    )


def test_the_default_save_folder_is_created(tmp_path):
    path = tmp_path / "res" / "sub" / "demo.mp4"
    assert check_save_path(path, create_folder=True) == path and path.parent.is_dir()
    assert not path.exists() and list(path.parent.iterdir()) == []  # the write test leaves nothing


# ---- signals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum, wait_for", [(signal.SIGTERM, "output"), (signal.SIGINT, "frame store")])
def test_a_signal_stops_the_render_and_leaves_nothing_behind(tmp_path, ckpt_dir, signum, wait_for):  # noqa: F811
    """A re-dub (its frames kept in a temporary folder) stopped while the source is cropped or
    while frames are written: one line, the shell's exit code, no file left anywhere."""
    out_dir, tmp_dir = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    tmp_dir.mkdir()
    cmd = [sys.executable, str(ROOT / "demo_lip_pose.py"), "--source_path", POSE, "--no_crop"]
    cmd += ["--audio_driving_path", SPEECH_LONG, "--save_path", out_dir / "redub.mp4", "--ckpt_dir", ckpt_dir]
    env = dict(os.environ, TMPDIR=str(tmp_dir), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(list(map(str, cmd)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the event: the partial output, or the re-dubbed source's frame store, exists (both only inside
    # the render, so the signal never lands while Python starts); the deadline is only a hang guard
    folder, pattern = (out_dir, ".redub.partial-*.mp4") if wait_for == "output" else (tmp_dir, "edtalk-source-*/*")
    deadline = time.monotonic() + 1200
    while not list(folder.glob(pattern)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the render ended before the signal"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode == 128 + signum
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert list(out_dir.iterdir()) == [] and list(tmp_dir.iterdir()) == []


DROPPED_SIGNAL = """
import os, signal, subprocess, sys
from edtalk.signals import Interrupted, raise_if_interrupted, stop_on_signals

def signal_myself():  # runs in the parent after each fork: Python drops exceptions raised here
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10000):
        pass

os.register_at_fork(after_in_parent=signal_myself)
try:
    with stop_on_signals():
        subprocess.run(["true"], preexec_fn=os.setpgrp)  # as imageio-ffmpeg starts ffmpeg
        print("went on after the fork", flush=True)
        raise_if_interrupted()
        print("not reached", flush=True)
except Interrupted as stop:
    sys.exit(stop.exit_code)
"""


def test_a_signal_whose_exception_python_drops_still_stops_the_render():
    """The race that once let a render run to the end after Ctrl-C: the signal landed while a
    subprocess started, and Python dropped the exception. The next check raises it again."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", DROPPED_SIGNAL], env=env, capture_output=True, text=True)
    assert proc.stdout.splitlines() == ["went on after the fork"]  # the first exception was dropped
    assert proc.stderr == ""  # and Python did not print it
    assert proc.returncode == 128 + signal.SIGTERM


# ---- feedback --------------------------------------------------------------------------------------


def test_every_long_step_shows_progress(tmp_path, ckpt_dir, capsys):  # noqa: F811
    out = tmp_path / "progress.mp4"
    args = ["--source_path", SOURCE, "--audio_driving_path", MEDIA / "speech_16k_e2e.wav"]
    args += ["--pose_driving_path", POSE, "--save_path", out, "--ckpt_dir", ckpt_dir]
    assert demo_lip_pose.main(list(map(str, args))) == 0
    err = capsys.readouterr().err
    for step in ("finding the face in pose_source1.mp4", "encoding pose_source1.mp4", "rendering"):
        assert re.search(rf"{re.escape(step)}: +\d+%.*\d+/\d+", err), step


def test_a_symlinked_emotion_folder_is_ignored_by_git(tmp_path):
    """ckpts/predefined_exp_weights is often a link to a shared folder: git must not list it as untracked."""
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "team_folder").mkdir()
    (tmp_path / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    (tmp_path / "ckpts" / "predefined_exp_weights").symlink_to(tmp_path / "team_folder", target_is_directory=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path, capture_output=True, text=True
    )
    assert status.returncode == 0 and "ckpts" not in status.stdout, status.stdout


def _download_ckpts(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, str(ROOT / "download_ckpts.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)


def test_download_check_loads_what_is_there_and_names_only_what_is_missing(tmp_path, ckpt_dir):  # noqa: F811
    folder = tmp_path / "ckpts"
    folder.mkdir()
    (folder / "EDTalk_lip_pose.pt").symlink_to(Path(ckpt_dir) / "EDTalk_lip_pose.pt")
    result = _download_ckpts("--check", "--ckpt_dir", str(folder))
    assert result.returncode == 1
    assert re.search(r"ok +\S*EDTalk_lip_pose.pt", result.stdout), result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("missing EDTalk.pt, Audio2Lip.pt, predefined_exp_weights/angry.npy"), last
    assert "EDTalk_lip_pose.pt" not in last and "do not load" not in last


def test_an_offline_download_leaves_no_empty_folder(tmp_path):
    result = _download_ckpts("--ckpt_dir", str(tmp_path / "new" / "ckpts"))
    assert result.returncode == 1 and "Cannot reach Hugging Face" in result.stderr
    assert not (tmp_path / "new" / "ckpts").exists()


# ---- checks before long work, reading only what is used ------------------------------------------


@pytest.fixture
def decoding(monkeypatch):
    """Counts video decoding: {'opened': videos ffmpeg started decoding, 'frames': frames handed out}."""
    import edtalk.inputs
    import edtalk.video_io

    count = {"opened": 0, "frames": 0}
    open_video, frames_of = edtalk.video_io._open, edtalk.video_io.iter_frames

    def counted_open(*args, **kwargs):
        count["opened"] += 1
        return open_video(*args, **kwargs)

    def counted_frames(*args, **kwargs):
        for frame in frames_of(*args, **kwargs):
            count["frames"] += 1
            yield frame

    monkeypatch.setattr(edtalk.video_io, "_open", counted_open)
    monkeypatch.setattr(edtalk.inputs, "iter_frames", counted_frames)
    return count


@pytest.mark.parametrize(
    "demo, args, message",
    [
        (demo_EDTalk_V, ["--lip_driving_path", POSE, "--exp_type", "joyful"], r"no expression 'joyful'"),
        (
            demo_EDTalk_V,
            ["--lip_driving_path", POSE, "--pose_driving_path", "{lip_pose_template}"],
            r"motion computed by the lip-pose generator, but this mode uses the full generator",
        ),
        (
            demo_EDTalk_A,
            ["--audio_driving_path", SPEECH, "--pose_driving_path", POSE, "--exp_from_audio"],
            r"Audio2Exp.pt",
        ),
        (demo_EDTalk_V, ["--lip_driving_path", POSE, "--audio_driving_path", "{tmp}/noise.wav"], r"noise.wav"),
    ],
)
def test_inputs_are_checked_before_any_frame_is_decoded(
    tmp_path,
    capsys,
    ckpt_dir,  # noqa: F811
    decoding,
    demo,
    args,
    message,
):
    """A 10-s driving video and a mistake found without it (an emotion, a template of the other
    model, a missing optional checkpoint, an unreadable soundtrack): the video is never opened."""
    (tmp_path / "noise.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    lip_pose_template = template(tmp_path / "lp.npz", "lip_pose")
    args = [str(a).format(tmp=tmp_path, lip_pose_template=lip_pose_template) for a in args]
    out = tmp_path / "out.mp4"
    argv = ["--source_path", str(SOURCE), *args, "--no_crop", "--save_path", str(out), "--ckpt_dir", str(ckpt_dir)]
    assert demo.main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert decoding == {"opened": 0, "frames": 0} and not out.exists()


def test_re_dubbing_decodes_only_the_frames_the_output_uses(tmp_path, ckpt_dir, decoding):  # noqa: F811
    """A 10-s (250-frame) video re-dubbed with 0.12 s of speech: 3 frames decoded, 3 rendered."""
    speech, rate = soundfile.read(SPEECH)
    soundfile.write(tmp_path / "short.wav", speech[: int(0.12 * rate)], rate)
    out = tmp_path / "redub.mp4"
    assert (
        lip_pose(
            "--source_path", POSE, "--audio_driving_path", tmp_path / "short.wav", "--save_path", out, ckpt_dir=ckpt_dir
        )
        == 0
    )
    assert decoding["frames"] == 3
    assert probe(out) == (3, 25.0, (256, 256), True)


# ---- motion models and their generator -----------------------------------------------------------


def pose_checkpoint(path, fingerprint):
    """An (untrained) Audio2Pose checkpoint recording the generator it was trained against."""
    from networks.audio2pose import Audio2Pose

    torch.manual_seed(0)
    torch.save({"audio2pose": Audio2Pose().state_dict(), "generator_fingerprint": fingerprint}, path)
    return path


def test_a_pose_model_of_another_generator_is_warned_about_once(tmp_path, narrow_ckpts, caplog):
    from edtalk.pipeline import TalkingHeadPipeline

    def render_twice(fingerprint):
        ckpt = pose_checkpoint(tmp_path / f"{fingerprint}.pt", fingerprint)
        pipe = TalkingHeadPipeline(narrow_ckpts, "lip_pose", "cpu", crop=False, progress=False, audio2pose_path=ckpt)
        caplog.clear()
        for _ in range(2):
            with caplog.at_level(logging.INFO), pipe.render(SOURCE, audio=SPEECH) as result:
                assert result.num_frames == 12
        return pipe, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    pipe, warned = render_twice("other")
    assert len(warned) == 1, warned
    assert "other.pt was trained against other generator weights (other, this generator" in warned[0]
    assert "train it again against this generator" in warned[0]
    own = pipe.generator_fingerprint
    assert render_twice(own)[1] == []


# ---- notes ---------------------------------------------------------------------------------------


def notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("note:")]


def test_a_note_comes_once_at_info_and_quiet_silences_it(tmp_path, ckpt_dir, caplog):  # noqa: F811
    """No Audio2Pose.pt in the folder: one info note that the head stays still; none with --quiet."""
    from edtalk.pipeline import TalkingHeadPipeline

    lip = template(tmp_path / "lip.npz", "lip_pose", frames=1)
    args = ["--source_path", SOURCE, "--audio_driving_path", SPEECH, "--lip_driving_path", lip]
    with caplog.at_level(logging.DEBUG):
        assert lip_pose(*args, "--save_path", tmp_path / "a.mp4", ckpt_dir=ckpt_dir, quiet=False) == 0
    said = [r for r in caplog.records if r.getMessage().startswith("note:")]
    assert len(said) == 1 and said[0].levelno == logging.INFO and "the head stays still" in said[0].getMessage()

    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        assert lip_pose(*args, "--save_path", tmp_path / "b.mp4", ckpt_dir=ckpt_dir) == 0
    assert notes(caplog) == []

    caplog.clear()
    pipe = TalkingHeadPipeline(ckpt_dir, "lip_pose", "cpu", crop=False, progress=False)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            pipe.render(SOURCE, audio=SPEECH).close()
    assert len(notes(caplog)) == 1  # once per pipeline (render_many.py's jobs share one)


def test_quiet_still_shows_warnings(tmp_path, ckpt_dir, caplog):  # noqa: F811
    """--quiet hides notes and the progress bar, not a warning (here: a clip of other generator weights)."""
    lip = template(tmp_path / "lip.npz", "lip_pose", frames=1)
    args = ["--source_path", SOURCE, "--audio_driving_path", SPEECH, "--lip_driving_path", lip]
    with caplog.at_level(logging.DEBUG):
        assert lip_pose(*args, "--save_path", tmp_path / "a.mp4", ckpt_dir=ckpt_dir) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and all("lip.npz was saved with other lip-pose generator weights" in w for w in warned), warned
    assert notes(caplog) == []


def test_no_note_before_an_unrelated_error(tmp_path, ckpt_dir, caplog, capsys):  # noqa: F811
    args = ["--source_path", SOURCE, "--audio_driving_path", SPEECH, "--exp_type", "joyful", "--no_crop"]
    argv = [*map(str, args), "--save_path", str(tmp_path / "a.mp4"), "--ckpt_dir", str(ckpt_dir)]
    with caplog.at_level(logging.DEBUG):
        assert demo_EDTalk_A.main(argv) == 1
    assert notes(caplog) == [] and "no expression 'joyful'" in capsys.readouterr().err


# ---- emotion names in any case -------------------------------------------------------------------


def test_an_emotion_name_in_capitals_is_accepted_by_the_demo_and_a_job(tmp_path, ckpt_dir):  # noqa: F811
    import render_many

    lip = str(template(tmp_path / "lip.npz", "full", frames=1))
    args = ["--source_path", str(SOURCE), "--audio_driving_path", str(SPEECH), "--lip_driving_path", lip, "--no_crop"]
    argv = [*args, "--exp_type", "Happy", "--save_path", str(tmp_path / "a.mp4"), "--ckpt_dir", str(ckpt_dir)]
    assert demo_EDTalk_V.main([*argv, "--quiet"]) == 0
    job = {"model": "full", "source_path": str(SOURCE), "audio_driving_path": str(SPEECH), "lip_driving_path": lip}
    job.update(no_crop=True, exp_type="HAPPY", save_path=str(tmp_path / "b.mp4"))
    (tmp_path / "jobs.jsonl").write_text(json.dumps(job))
    report = tmp_path / "report.json"
    argv = ["--jobs", str(tmp_path / "jobs.jsonl"), "--ckpt_dir", str(ckpt_dir), "--device", "cpu", "--report"]
    assert render_many.main([*argv, str(report)]) == 0
    assert json.loads(report.read_text())["done"] == 1
    assert probe(tmp_path / "a.mp4")[0] == probe(tmp_path / "b.mp4")[0] == 1
