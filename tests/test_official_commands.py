"""Commands written for the official EDTalk scripts, the demos' defaults, and their messages.

Renders use synthetic official-format weights; the official-flag renders are tiny (the 0.49-s
speech clip, 6-frame driving clips). The no-argument runs read every bundled sample but keep only
the first frames of the clip (see `first_frames`), since rendering all 141 frames of the sample
speech takes minutes on a CPU.
"""

import importlib
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from PIL import Image

import edtalk
from edtalk import cli
from edtalk.checkpoints import DEFAULT_CKPT_DIR
from edtalk.pipeline import TalkingHeadPipeline
from edtalk.video_io import VideoWriter, iter_frames

from .conftest import ROOT
from .test_checkpoints import make_expression_folder
from .test_demos import POSE, SOURCE, SPEECH, ckpt_dir, probe, short_clip  # noqa: F401  (fixtures)

OFFICIAL_SCRIPTS = [
    "demo_EDTalk_A_using_predefined_exp_weights",
    "demo_EDTalk_V_using_predefined_exp_weights",
    "demo_lip_pose_V",
    "demo_change_a_video_lip",
]
ALL_SCRIPTS = ["demo_EDTalk_A", "demo_EDTalk_V", "demo_lip_pose", *OFFICIAL_SCRIPTS]
SAMPLE_SPEECH_FRAMES = 141  # test_data/speech.wav: 5.68 s at 25 fps
SAMPLE_MOUTH_FRAMES = 50  # test_data/mouth_source.mp4: 2 s


def demo(name):
    return importlib.import_module(name)


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def weights_elsewhere(tmp_path_factory, narrow_ckpts):
    """(a --ckpt_dir holding only the predefined emotions, a folder with the three checkpoints)."""
    only_emotions = tmp_path_factory.mktemp("only_emotions")
    make_expression_folder(only_emotions / "predefined_exp_weights")
    models = tmp_path_factory.mktemp("models")
    for name in edtalk.CHECKPOINTS:
        (models / name).symlink_to(narrow_ckpts / name)
    return only_emotions, models


# ---- each official script name with its official flags -------------------------------------------


def test_predefined_expression_script_with_official_flags(tmp_path, weights_elsewhere, short_clip):  # noqa: F811
    """--model_path and --audio2lip_model_path are used: --ckpt_dir has neither checkpoint."""
    only_emotions, models = weights_elsewhere
    out = tmp_path / "a.mp4"
    code = demo("demo_EDTalk_A_using_predefined_exp_weights").main(
        [
            *("--source_path", str(SOURCE), "--audio_driving_path", str(SPEECH)),
            *("--pose_driving_path", str(short_clip), "--exp_type", "happy", "--save_path", str(out)),
            *("--model_path", str(models / "EDTalk.pt"), "--audio2lip_model_path", str(models / "Audio2Lip.pt")),
            *("--need_crop_source_img", "--need_crop_pose_video", "--ckpt_dir", str(only_emotions), "--quiet"),
        ]
    )
    assert code == 0
    assert probe(out) == (12, 25.0, (256, 256), True)


def test_video_driven_predefined_expression_script(tmp_path, ckpt_dir, short_clip):  # noqa: F811
    out = tmp_path / "v.mp4"
    code = demo("demo_EDTalk_V_using_predefined_exp_weights").main(
        [
            *("--source_path", str(SOURCE), "--lip_driving_path", str(short_clip), "--exp_type", "sad"),
            *("--audio_driving_path", str(SPEECH), "--save_path", str(out), "--no_crop"),
            *("--ckpt_dir", str(ckpt_dir), "--quiet"),
        ]
    )
    assert code == 0
    assert probe(out) == (6, 25.0, (256, 256), True)  # the mouth video's length


def test_lip_pose_video_script(tmp_path, ckpt_dir, short_clip):  # noqa: F811
    out = tmp_path / "lpv.mp4"
    code = demo("demo_lip_pose_V").main(
        [
            *("--source_path", str(SOURCE), "--lip_driving_path", str(short_clip), "--pose_driving_path", str(POSE)),
            *("--fix_pose", "--save_path", str(out), "--model_path", str(ckpt_dir / "EDTalk_lip_pose.pt")),
            *("--no_crop", "--ckpt_dir", str(ckpt_dir), "--quiet"),
        ]
    )
    assert code == 0
    assert probe(out) == (6, 25.0, (256, 256), False)  # the clip has no audio track and none was given


def test_change_a_video_lip_script(tmp_path, weights_elsewhere, short_clip):  # noqa: F811
    """The source video's 6 frames play back and forth under 12 frames of speech; 256x256 crops
    are written, as by the official script."""
    only_emotions, models = weights_elsewhere
    out = tmp_path / "redub.mp4"
    code = demo("demo_change_a_video_lip").main(
        [
            *("--source_path", str(short_clip), "--audio_driving_path", str(SPEECH), "--save_path", str(out)),
            *("--model_path", str(models / "EDTalk_lip_pose.pt")),
            *("--audio2lip_model_path", str(models / "Audio2Lip.pt"), "--need_crop_source_img"),
            *("--no_crop", "--ckpt_dir", str(only_emotions), "--quiet"),
        ]
    )
    assert code == 0
    assert probe(out) == (12, 25.0, (256, 256), True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model_path", "{tmp}/mine.pt"], r"^error: checkpoint not found: .*/mine\.pt; check the path$"),
        (["--model_path", "{ckpts}/EDTalk_lip_pose.pt"], r"holds the lip-pose generator, but this mode needs"),
        (["--audio2lip_model_path", "{tmp}/a2l.pt"], r"^error: checkpoint not found: .*/a2l\.pt; check the path$"),
        (["--audio2lip_model_path", "{ckpts}/EDTalk.pt"], r"EDTalk\.pt is a generator checkpoint, but an Audio2Lip"),
    ],
)
def test_official_checkpoint_flags_name_the_file(tmp_path, capsys, ckpt_dir, args, message):  # noqa: F811
    out = tmp_path / "out.mp4"
    args = [a.format(tmp=tmp_path, ckpts=ckpt_dir) for a in args]
    argv = [*args, "--source_path", str(SOURCE), "--audio_driving_path", str(SPEECH), "--no_crop"]
    code = demo("demo_EDTalk_A").main([*argv, "--save_path", str(out), "--ckpt_dir", str(ckpt_dir), "--quiet"])
    assert code == 1
    assert re.search(message, one_error_line(capsys))
    assert not out.exists()


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_face_sr_without_gfpgan_weights_names_the_file(name, tmp_path, capsys, ckpt_dir):  # noqa: F811
    out = tmp_path / "out.mp4"
    code = demo(name).main(["--face_sr", "--ckpt_dir", str(ckpt_dir), "--save_path", str(out), "--quiet"])
    assert code == 1 and not out.exists()
    assert re.search(
        rf"GFPGAN checkpoint not found: {re.escape(str(ckpt_dir))}/GFPGANv1\.4\.pth", one_error_line(capsys)
    )


@pytest.mark.parametrize("paste", [False, True])
def test_face_sr_renders_restored_512_faces(tmp_path, ckpt_dir, gfpgan_ckpt, paste):  # noqa: F811
    """--face_sr with synthetic GFPGAN weights: 512x512 crops, or the original frame with --paste_back."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for entry in ckpt_dir.iterdir():
        (folder / entry.name).symlink_to(entry)
    (folder / "GFPGANv1.4.pth").symlink_to(gfpgan_ckpt)
    speech = tmp_path / "speech.wav"  # 3 frames: each one is a full GFPGAN pass
    wav, rate = soundfile.read(SPEECH)
    soundfile.write(speech, wav[: 3 * rate // 25], rate)
    out = tmp_path / "sr.mp4"
    argv = ["--source_path", str(ROOT / "test_data" / "astronaut.jpg"), "--audio_driving_path", str(speech)]
    argv += ["--face_sr", "--ckpt_dir", str(folder), "--save_path", str(out), "--quiet"]
    assert demo("demo_lip_pose").main(argv + (["--paste_back"] if paste else [])) == 0
    size = Image.open(ROOT / "test_data" / "astronaut.jpg").size if paste else (512, 512)
    assert probe(out) == (3, 25.0, size, True)


# ---- defaults: the bundled samples, from any working directory -----------------------------------


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_defaults_resolve_in_the_repository_from_another_cwd(name, tmp_path, monkeypatch):
    """Parsed with no arguments from a foreign working directory: every default path is the
    repository's and exists (checkpoints and res/ aside)."""
    monkeypatch.chdir(tmp_path)
    seen = {}
    monkeypatch.setattr(cli, "render_to_file", lambda args, model: seen.update(vars(args), model=model) or 0)
    assert demo(name).main([]) == 0
    assert seen["ckpt_dir"] == str(DEFAULT_CKPT_DIR) == str(ROOT / "ckpts")
    assert seen["save_path"] == seen["default_save_path"] and seen["save_path"].startswith(str(ROOT / "res") + "/")
    video_source = name == "demo_change_a_video_lip"
    assert seen["source_path"] == str(ROOT / "test_data" / ("mouth_source.mp4" if video_source else "astronaut.jpg"))
    mouth_video = "_V" in name
    assert seen.get("lip_driving_path") == (str(ROOT / "test_data" / "mouth_source.mp4") if mouth_video else None)
    for key in ("source_path", "lip_driving_path", "audio_driving_path", "pose_driving_path", "exp_driving_path"):
        assert seen.get(key) is None or (ROOT / seen[key]).is_file(), key
    expected_emotion = {"demo_EDTalk_A_using_predefined": "angry", "demo_EDTalk_V_using_predefined": "contempt"}
    assert seen.get("exp_type") == next((v for k, v in expected_emotion.items() if name.startswith(k)), None)
    assert seen["model"] == ("lip_pose" if "lip" in name else "full")


def test_help_from_another_cwd_shows_the_resolved_defaults(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "demo_lip_pose_V.py"), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for default in (
        ROOT / "test_data" / "astronaut.jpg",
        ROOT / "test_data" / "mouth_source.mp4",
        ROOT / "ckpts",
        ROOT / "res" / "demo_EDTalk_lip_pose_V.mp4",
    ):
        assert f"(default: {default})" in text


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_help_shows_defaults_and_keeps_the_example_layout(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo(name).main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "(default: auto)" in out and f"(default: {ROOT / 'ckpts'})" in " ".join(out.split())
    assert "(default: False)" not in out and "(default: None)" not in out
    example = demo(name).EXAMPLE
    assert f"example:\n  {example}\n" in out  # one line, not re-wrapped
    for flag in ("--model_path", "--need_crop_source_img", "--face_sr"):
        assert flag in out
    assert ("--audio2lip_model_path" in out) == ("audio_driving_path" in demo(name).INPUTS)  # mouth from audio
    if "predefined" in name:
        assert "(default: angry)" in out or "(default: contempt)" in out


def first_frames(monkeypatch, keep: int = 2) -> dict:
    """Make TalkingHeadPipeline.render keep only the first `keep` frames of each clip (every input
    is still read and checked in full); returns what the full rendering would have been."""
    full = {}
    render = TalkingHeadPipeline.render

    def shortened(self, source, **inputs):
        result = render(self, source, **inputs)
        full.update(num_frames=result.num_frames, size=result.size, audio_path=result.audio_path, source=source)
        frames = result.frames

        def first():
            for _, batch in zip(range(keep), frames):
                yield batch
            frames.close()

        result.frames, result.num_frames = first(), min(keep, result.num_frames)
        return result

    monkeypatch.setattr(TalkingHeadPipeline, "render", shortened)
    return full


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_every_demo_renders_the_samples_with_no_arguments(name, tmp_path, monkeypatch, ckpt_dir):  # noqa: F811
    """Only the output and the (synthetic) checkpoint folder are given, from another working
    directory; face detection on the sample photo (or video) included."""
    monkeypatch.chdir(tmp_path)
    full = first_frames(monkeypatch)
    out = tmp_path / "out.mp4"
    assert demo(name).main(["--save_path", str(out), "--ckpt_dir", str(ckpt_dir), "--quiet"]) == 0
    assert probe(out) == (2, 25.0, (256, 256), True)
    mouth_video = "_V" in name
    assert full["num_frames"] == (SAMPLE_MOUTH_FRAMES if mouth_video else SAMPLE_SPEECH_FRAMES)
    soundtrack = "mouth_source.mp4" if mouth_video else "speech.wav"
    assert full["audio_path"] == ROOT / "test_data" / soundtrack


# ---- --no_crop with inputs that are not square -----------------------------------------------------


@pytest.fixture(scope="module")
def not_square(tmp_path_factory):
    folder = tmp_path_factory.mktemp("not_square")
    face = np.asarray(Image.open(SOURCE).convert("RGB"))
    Image.fromarray(face[:, 28:228]).save(folder / "face_200x256.png")
    with VideoWriter(folder / "head_320x256.mp4") as writer:
        for _, frame in zip(range(3), iter_frames(POSE)):
            writer.write(np.pad(frame, ((0, 0), (32, 32), (0, 0)), mode="edge"))
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source_path", "{bad}/face_200x256.png"], "face_200x256.png is 200x256"),
        (
            ["--source_path", str(SOURCE), "--pose_driving_path", "{bad}/head_320x256.mp4"],
            "head_320x256.mp4 is 320x256",
        ),
    ],
)
def test_no_crop_with_a_non_square_input_says_what_to_do(
    tmp_path,
    capsys,
    ckpt_dir,  # noqa: F811
    not_square,
    args,
    message,
):
    out = tmp_path / "out.mp4"
    argv = [a.format(bad=not_square) for a in args] + ["--audio_driving_path", str(SPEECH), "--no_crop"]
    assert demo("demo_lip_pose").main([*argv, "--save_path", str(out), "--ckpt_dir", str(ckpt_dir), "--quiet"]) == 1
    line = one_error_line(capsys)
    assert message in line
    assert "drop --no_crop to detect and align the face, or crop it square to 256x256" in line
    assert not out.exists()


# ---- checkpoint messages -------------------------------------------------------------------------


def test_missing_checkpoint_names_the_folder_used(tmp_path, capsys):
    folder = tmp_path / "my weights"
    folder.mkdir()
    out = tmp_path / "out.mp4"
    assert demo("demo_lip_pose").main(["--ckpt_dir", str(folder), "--save_path", str(out), "--quiet"]) == 1
    line = one_error_line(capsys)
    assert f"checkpoint not found: {folder / 'EDTalk_lip_pose.pt'}" in line
    assert f"`python download_ckpts.py --ckpt_dir {folder}`" in line
    assert f"put it in {folder / 'EDTalk_lip_pose.pt'}" in line
    assert "put it in ckpts/" not in line


def test_missing_expression_weights_name_the_folder_used(tmp_path, capsys, narrow_ckpts):
    folder = tmp_path / "only_models"
    folder.mkdir()
    for name in ("EDTalk.pt", "Audio2Lip.pt"):
        (folder / name).symlink_to(narrow_ckpts / name)
    argv = ["--source_path", str(SOURCE), "--audio_driving_path", str(SPEECH), "--no_crop", "--quiet"]
    code = demo("demo_EDTalk_A_using_predefined_exp_weights").main(
        [*argv, "--ckpt_dir", str(folder), "--save_path", str(tmp_path / "out.mp4")]
    )
    assert code == 1
    line = one_error_line(capsys)
    assert f"expression weight folder not found: {folder / 'predefined_exp_weights'}" in line
    assert f"`python download_ckpts.py --ckpt_dir {folder}`" in line


def test_the_default_folder_needs_no_ckpt_dir_flag():
    hint = edtalk.checkpoints.where_to_get("EDTalk.pt")
    assert "`python download_ckpts.py`" in hint and f"put it in {DEFAULT_CKPT_DIR / 'EDTalk.pt'}" in hint


@pytest.mark.parametrize("name, keep", [("EDTalk_lip_pose.pt", 1 << 20), ("Audio2Lip.pt", None), ("EDTalk.pt", 0)])
def test_truncated_checkpoint_says_re_download(tmp_path, capsys, narrow_ckpts, name, keep):
    """A cut download (the first MB, half the file, nothing) is named, without torch's own text."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for other in edtalk.CHECKPOINTS:
        (folder / other).symlink_to(narrow_ckpts / other)
    (folder / name).unlink()
    data = (narrow_ckpts / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2 if keep is None else keep])
    script = "demo_EDTalk_A" if name == "EDTalk.pt" else "demo_lip_pose"
    argv = ["--source_path", str(SOURCE), "--audio_driving_path", str(SPEECH), "--no_crop", "--quiet"]
    assert demo(script).main([*argv, "--ckpt_dir", str(folder), "--save_path", str(tmp_path / "o.mp4")]) == 1
    line = one_error_line(capsys)
    expected = f"error: cannot read checkpoint {folder / name}: file is truncated or corrupt: re-download {name}; "
    assert line.startswith(expected)
    assert f"`python download_ckpts.py --ckpt_dir {folder}`" in line and "huggingface.co/" in line
    for torch_text in ("PytorchStreamReader", "miniz", "weights_only", "Unpickl", "central directory"):
        assert torch_text not in line


def test_a_checkpoint_with_foreign_objects_is_refused_plainly(tmp_path):
    import torch

    path = tmp_path / "custom.pt"
    torch.save({"gen": {}, "extra": np.random.default_rng(0)}, path)
    with pytest.raises(edtalk.CheckpointError, match=r"^cannot read checkpoint .*custom.pt: it holds pickled Python"):
        edtalk.load_generator(path)
