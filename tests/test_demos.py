"""End-to-end runs of the three demo scripts on real media with synthetic weights."""

import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
import torch

import demo_EDTalk_A
import demo_EDTalk_V
import demo_lip_pose
import edtalk
from edtalk.images import to_tensor, to_uint8
from edtalk.inputs import AudioArray
from edtalk.video_io import VideoWriter, iter_frames, read_image

from .conftest import MEDIA, ROOT
from .test_checkpoints import make_expression_folder

SOURCE = MEDIA / "identity_source.jpg"
POSE = MEDIA / "pose_source1.mp4"
SPEECH = MEDIA / "speech_16k_e2e.wav"  # 0.49 s -> 12 frames at 25 fps
PHOTO = ROOT / "test_data" / "astronaut.jpg"


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory, narrow_ckpts):
    folder = tmp_path_factory.mktemp("ckpts")
    for name in edtalk.CHECKPOINTS:
        (folder / name).symlink_to(narrow_ckpts / name)
    make_expression_folder(folder / "predefined_exp_weights")
    return folder


def first_frames_clip(folder, count: int):
    """An mp4 in `folder` of the first `count` frames of the pose video, with no audio track."""
    path = folder / f"clip{count}.mp4"
    with VideoWriter(path) as writer:
        for _, frame in zip(range(count), iter_frames(POSE)):
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """The first 6 frames of the pose video, with no audio track."""
    return first_frames_clip(tmp_path_factory.mktemp("media"), 6)


def probe(path):
    """(frames, fps, (width, height), has_audio) of a written file."""
    info = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    video = re.search(r"Video: h264.*?yuv420p.*?, (\d+)x(\d+).*?, ([\d.]+) fps", info)
    assert video, info
    frames = sum(1 for _ in iter_frames(path, fps=None))
    return frames, float(video.group(3)), (int(video.group(1)), int(video.group(2))), "Audio: aac" in info


def rendered(demo, ckpt_dir, save_path, **flags):
    """Run a demo's main() with `flags` as its options (True: a switch), quietly, on `ckpt_dir`; it
    must succeed. -> probe(save_path)."""
    args = [f"--{name}" if value is True else f"--{name}={value}" for name, value in flags.items()]
    assert demo.main([*args, f"--save_path={save_path}", f"--ckpt_dir={ckpt_dir}", "--quiet"]) == 0
    return probe(save_path)


def test_lip_pose_no_crop_matches_the_generator(tmp_path, ckpt_dir, narrow_lip_pose_generator, audio2lip):
    out = tmp_path / "lp.mp4"
    assert rendered(
        demo_lip_pose,
        ckpt_dir,
        out,
        source_path=SOURCE,
        audio_driving_path=SPEECH,
        pose_driving_path=POSE,
        no_crop=True,
        batch_size=5,
    ) == (12, 25.0, (256, 256), True)

    lip = audio2lip.predict(torch.from_numpy(edtalk.audio.mel_windows(SPEECH)))
    pose = to_tensor(np.stack([f for _, f in zip(range(12), iter_frames(POSE))]), torch.device("cpu"))
    expected = to_uint8(
        narrow_lip_pose_generator.animate(to_tensor(read_image(SOURCE)[None], torch.device("cpu")), lip, pose)
    )
    decoded = np.stack(list(iter_frames(out, fps=None)))
    mse = np.mean((decoded.astype(float) - expected) ** 2)
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > 35, f"decoded frames differ from the generator's output: PSNR {psnr:.1f} dB"


def test_audio_driven_full_model_on_an_uncropped_photo(tmp_path, ckpt_dir):
    out = tmp_path / "a.mp4"
    assert rendered(
        demo_EDTalk_A,
        ckpt_dir,
        out,
        source_path=PHOTO,
        audio_driving_path=SPEECH,
        pose_driving_path=POSE,
        exp_type="happy",
        paste_back=True,
    ) == (12, 25.0, (512, 512), True)  # the original photo's size
    first = next(iter_frames(out))
    photo = read_image(PHOTO)
    assert np.abs(first[:40, :40].astype(int) - photo[:40, :40]).mean() < 6  # background kept around the face


def test_audio_driven_with_expression_video_and_still_head(tmp_path, ckpt_dir, short_clip):
    out = tmp_path / "a2.mp4"
    assert rendered(
        demo_EDTalk_A,
        ckpt_dir,
        out,
        source_path=SOURCE,
        audio_driving_path=SPEECH,
        exp_driving_path=short_clip,
        no_crop=True,
    ) == (12, 25.0, (256, 256), True)


def test_video_driven_full_model(tmp_path, ckpt_dir, short_clip):
    out = tmp_path / "v.mp4"
    assert rendered(
        demo_EDTalk_V,
        ckpt_dir,
        out,
        source_path=SOURCE,
        lip_driving_path=short_clip,
        pose_driving_path=POSE,
        exp_driving_path=SOURCE,
        audio_driving_path=SPEECH,
    ) == (6, 25.0, (256, 256), True)  # length of the mouth video
    silent = tmp_path / "v_silent.mp4"
    without_audio = rendered(demo_EDTalk_V, ckpt_dir, silent, source_path=SOURCE, lip_driving_path=short_clip)
    assert without_audio == (6, 25.0, (256, 256), False)  # no audio given, none in the mouth video


def test_redub_a_video_with_paste_back(tmp_path, ckpt_dir, short_clip):
    out = tmp_path / "redub.mp4"
    assert rendered(
        demo_lip_pose, ckpt_dir, out, source_path=short_clip, audio_driving_path=SPEECH, paste_back=True
    ) == (12, 25.0, (256, 256), True)  # 6 source frames ping-ponged to 12


def test_mouth_from_video_in_the_lip_pose_model(tmp_path, ckpt_dir, short_clip):
    out = tmp_path / "lpv.mp4"
    assert rendered(
        demo_lip_pose,
        ckpt_dir,
        out,
        source_path=SOURCE,
        lip_driving_path=short_clip,
        audio_driving_path=SPEECH,
        fix_pose=True,
        pose_driving_path=POSE,
        no_crop=True,
    ) == (6, 25.0, (256, 256), True)


# ---- bad inputs: one line, exit code 1, nothing written ------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    blank = folder / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(blank)
    (folder / "noise.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (folder / "empty.mp4").write_bytes(b"")
    audio_only = folder / "audio_only.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(SPEECH), "-c:a", "aac", str(audio_only)], check=True
    )
    return folder


A_SOURCE_AND_SPEECH = "--source_path {source} --audio_driving_path {speech}"
BAD_INPUTS = [  # (demo, its arguments, the one line it must print)
    (demo_lip_pose, "--source_path {bad}/blank.png --audio_driving_path {speech}", r"no face found in .*blank.png"),
    (
        demo_lip_pose,
        "--source_path {source} --audio_driving_path {bad}/noise.wav",
        r"cannot read audio from .*noise.wav",
    ),
    (
        demo_lip_pose,
        A_SOURCE_AND_SPEECH + " --pose_driving_path {bad}/empty.mp4",
        r"cannot read video .*empty.mp4",
    ),
    (
        demo_EDTalk_V,
        "--source_path {source} --lip_driving_path {bad}/audio_only.mp4",
        r"video .*audio_only.mp4 has no frames",
    ),
    (demo_EDTalk_A, A_SOURCE_AND_SPEECH + " --exp_type joyful", r"no expression 'joyful' in .*; available: angry"),
    (
        demo_EDTalk_A,
        A_SOURCE_AND_SPEECH + " --ckpt_dir {bad}/nowhere",
        r"not found: .*nowhere/EDTalk.pt; get EDTalk.pt with `python download_ckpts.py --ckpt_dir .*/nowhere`",
    ),
    (
        demo_EDTalk_A,
        A_SOURCE_AND_SPEECH + " --ckpt_dir {lip_pose_as_full}",
        r"holds the lip-pose generator, but this mode needs the full generator EDTalk.pt",
    ),
    (demo_EDTalk_A, A_SOURCE_AND_SPEECH + " --generator_ckpt {bad}/none.pt", r"checkpoint not found: .*none.pt"),
    (demo_lip_pose, "--source_path {bad}/missing.jpg --audio_driving_path {speech}", r"image not found: .*missing.jpg"),
]


@pytest.mark.parametrize("demo, args, message", BAD_INPUTS)
def test_bad_input_gives_one_line_and_writes_nothing(
    tmp_path, capsys, ckpt_dir, narrow_ckpts, bad_files, demo, args, message
):
    lip_pose_as_full = tmp_path / "swapped"
    lip_pose_as_full.mkdir()
    (lip_pose_as_full / "EDTalk.pt").symlink_to(narrow_ckpts / "EDTalk_lip_pose.pt")
    out = tmp_path / "out" / "result.mp4"
    out.parent.mkdir()
    places = dict(bad=bad_files, lip_pose_as_full=lip_pose_as_full, source=SOURCE, speech=SPEECH)
    args = [word.format(**places) for word in args.split()]
    argv = [*args, "--save_path", str(out), "--quiet"]
    if "--ckpt_dir" not in args:
        argv += ["--ckpt_dir", str(ckpt_dir)]
    assert demo.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("demo", [demo_EDTalk_A, demo_EDTalk_V, demo_lip_pose])
def test_help_shows_an_example(demo, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"python {demo.__name__}.py" in out and "--device" in out


def test_pipeline_renders_many_clips_lazily_in_batches(ckpt_dir):
    """Load once, render twice; frames come as a generator of batch_size batches."""
    import inspect

    from edtalk.pipeline import TalkingHeadPipeline

    pipe = TalkingHeadPipeline(ckpt_dir, model="lip_pose", device="cpu", batch_size=5, crop=False, progress=False)
    for pose in (None, POSE):
        result = pipe.render(SOURCE, audio=SPEECH, pose=pose)
        assert inspect.isgenerator(result.frames)
        assert (result.num_frames, result.fps, result.size, result.audio_path) == (12, 25.0, (256, 256), SPEECH)
        sizes = [batch.shape for batch in result.frames]
        assert sizes == [(5, 256, 256, 3), (5, 256, 256, 3), (2, 256, 256, 3)]


def test_precision_options(ckpt_dir):
    from edtalk.pipeline import TalkingHeadPipeline

    with pytest.raises(edtalk.EDTalkError, match="fp16 needs a GPU"):
        TalkingHeadPipeline(ckpt_dir, model="lip_pose", device="cpu", precision="fp16")
    pipe = TalkingHeadPipeline(ckpt_dir, model="lip_pose", device="cpu", crop=False, progress=False, precision="bf16")
    assert pipe.batch_size == 1  # the CPU default
    speech, rate = soundfile.read(SPEECH, dtype="float32")
    two_frames = AudioArray(speech[: rate * 2 // 25], rate)  # this CPU may emulate bf16: keep it short
    frames = np.concatenate(list(pipe.render(SOURCE, audio=two_frames).frames))
    assert pipe.precision == torch.bfloat16
    assert frames.shape == (2, 256, 256, 3) and frames.dtype == np.uint8
