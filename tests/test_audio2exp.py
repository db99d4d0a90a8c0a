"""Audio-to-expression: the network learns a synthetic audio -> emotion / expression mapping, streams
exactly, and its training script runs under torchrun, resumes and drives demo_EDTalk_A."""

import copy
import json
import subprocess

import numpy as np
import pytest
import torch

from edtalk import AudioError, predict_from_mel
from networks.audio2exp import EMOTIONS, Audio2Exp
from train.config import TrainConfig
from train.loop import _optimizers
from train.motion_stages import Audio2ExpStage

from .conftest import MEDIA
from .test_teacher import random_frames, write_set
from .test_training import script

PROTOTYPES = torch.randn(len(EMOTIONS), 10, generator=torch.Generator().manual_seed(0))  # expression per emotion
LOUDNESS = torch.randn(10, generator=torch.Generator().manual_seed(1))  # how loudness moves the expression


def synthetic_batch(n: int, t: int, rng: torch.Generator, context: int) -> dict:
    """Training windows of t frames with `context` frames of audio either side: mel windows whose
    emotion is a raised band of 10 mel bins and whose level follows a slow sine; the expression of
    the t centre frames is the emotion's prototype plus the level times a fixed direction."""
    labels = torch.randint(0, len(EMOTIONS), (n,), generator=rng)
    span = t + 2 * context
    mels = torch.randn(n, span, 1, 80, 16, generator=rng) * 0.5
    for i, e in enumerate(labels.tolist()):
        mels[i, :, 0, 10 * e : 10 * e + 10] += 2.0
    level = torch.sin(torch.rand(n, 1, generator=rng) * 6.28 + 0.3 * torch.arange(span))  # (n, span)
    mels += level[:, :, None, None, None]
    centre = level[:, context : context + t]
    return {"mels": mels, "exp": PROTOTYPES[labels][:, None] + centre[..., None] * LOUDNESS, "emotion": labels}


def test_a_training_window_is_predicted_as_inside_its_clip_and_reads_its_context():
    """The stage's windows carry real context: their prediction equals the whole clip's at those
    frames, and audio that differs only outside the window changes it."""
    torch.manual_seed(0)
    model = Audio2Exp(width=64, depth=2).eval()
    c = model.context
    clip = torch.randn(1, 40, 1, 80, 16)
    whole, _ = model(clip)
    exp, _ = model.centre(clip[:, 15 - c : 25 + c])
    torch.testing.assert_close(exp, whole[:, 15:25], atol=1e-5, rtol=1e-5)
    other = clip.clone()
    other[:, 15 - c : 15] += 3.0  # only the audio before the window differs
    changed, _ = model.centre(other[:, 15 - c : 25 + c])
    assert (changed - exp).abs().max() > 1e-3


def test_learns_a_synthetic_audio_to_emotion_and_expression_mapping():
    torch.manual_seed(0)
    stage = Audio2ExpStage()
    model = Audio2Exp(depth=2)  # 7 frames of context either side keep the windows short
    models = {"audio2exp": model}
    optim, _ = _optimizers(list(model.parameters()), [], TrainConfig(data="-", **stage.defaults))
    held_out = synthetic_batch(64, 8, torch.Generator().manual_seed(99), model.context)

    def evaluate():
        metrics = stage.validation_metrics(models, held_out)
        return metrics["exp"].mean().item(), metrics["accuracy"].mean().item()

    error_before, _ = evaluate()
    rng = torch.Generator().manual_seed(1)
    with torch.enable_grad():
        for _ in range(30):
            losses, images = stage.generator_losses(models, synthetic_batch(16, 8, rng, model.context))
            total = sum(stage.weights[k] * v for k, v in losses.items())
            optim.zero_grad()
            total.backward()
            optim.step()
    error_after, accuracy = evaluate()
    assert accuracy > 0.5  # chance: 1/8
    assert error_after < 0.4 * error_before
    assert [row.shape for row in images["rows"]] == [(16, 3, 10, 8)] * 2  # predicted and teacher tracks


def test_emotion_loss_skips_clips_without_a_label():
    stage, model = Audio2ExpStage(), Audio2Exp(width=64, depth=2)
    batch = synthetic_batch(2, 4, torch.Generator().manual_seed(0), model.context)
    batch["emotion"] = torch.tensor([-1, -1])
    losses, _ = stage.generator_losses({"audio2exp": model}, batch)
    assert losses["emotion"].item() == 0 and losses["exp"].item() > 0
    metrics = stage.validation_metrics({"audio2exp": model}, batch)
    assert metrics["exp"].shape == (2,) and metrics["accuracy"].shape == (0,)


@pytest.mark.parametrize("frames", [1, 30, 301])
def test_chunked_prediction_equals_the_whole_clip(frames):
    torch.manual_seed(0)
    model = Audio2Exp().eval()
    windows = torch.randn(frames, 1, 80, 16)
    whole_exp, whole_logits = model(windows[None])
    exp, probs = model.predict_chunks(windows.split(7))
    torch.testing.assert_close(exp, whole_exp[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(probs, whole_logits[0].mean(0).softmax(-1), atol=1e-6, rtol=1e-5)
    if frames > 1:  # the smoothing halves the frame-to-frame changes of the unsmoothed track at least
        unsmoothed = copy.deepcopy(model)
        unsmoothed.kernel.zero_()[model.radius] = 1
        raw = unsmoothed.predict(windows, chunk=64)[0]
        assert exp.diff(dim=0).abs().mean() < 0.5 * raw.diff(dim=0).abs().mean()
    with pytest.raises(AudioError, match=r"^mel windows must be \(T, 1, 80, 16\)"):
        predict_from_mel(model, windows[:, 0])  # a library user's windows are checked in edtalk.inputs


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory):
    """The first 0.12 s (3 frames) of the test speech."""
    import soundfile

    wav, rate = soundfile.read(MEDIA / "speech_16k_e2e.wav", dtype="float32")
    path = tmp_path_factory.mktemp("speech") / "short.wav"
    soundfile.write(path, wav[: int(0.12 * rate)], rate)
    return path


@pytest.fixture(scope="module")
def audio2exp_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("a2e") / "Audio2Exp.pt"
    torch.save({"audio2exp": Audio2Exp(width=64, depth=2).state_dict(), "step": 0}, path)
    return path


def emotional_set(root):
    """Four MEAD-style clips of 3 frames: two to train, two to validate (one without an emotion)."""
    rng = np.random.default_rng(0)
    clips = {}
    for name, emotion in (("M003#happy#level_1#001", 4), ("M003#sad#level_1#002", 6), ("W009#happy#level_2#003", 4)):
        mel = rng.uniform(-4, -3, (11, 80)).astype(np.float32)
        mel[:, 10 * emotion : 10 * emotion + 10] += 4
        clips[name] = (random_frames(rng, 3), mel)
    clips["WDA_Speaker_000"] = (random_frames(rng, 3), rng.uniform(-4, 4, (11, 80)).astype(np.float32))
    return write_set(root, clips, held_out=("W009#happy#level_2#003", "WDA_Speaker_000"))


def test_script_under_torchrun_resumes_and_drives_the_demo(tmp_path, narrow_ckpts, short_speech):
    data, run = emotional_set(tmp_path / "set"), tmp_path / "run"
    common = ["--data", data, "--generator", narrow_ckpts / "EDTalk.pt", "--run_dir", run, "--window", 3]
    common += ["--batch_size", 1, "--workers", 0, "--log_every", 1, "--save_every", 1, "--val_every", 1]
    cmd, env = script("train_audio2exp", *common, "--steps", 2, nproc=2)
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("teacher: encoding 4 clips") == 1  # rank 0 only; rank 1 waited for it
    (cache,) = data.glob("teacher-*.npz")
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 2 and stats[-1]["replica_divergence"] == 0
    assert {"exp", "smooth", "emotion", "val_exp", "val_accuracy"} <= set(stats[-1])
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "samples" / "000002.png").is_file()

    stamp = cache.stat().st_mtime_ns
    cmd, env = script("train_audio2exp", *common, "--steps", 3, "--resume", "auto")
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "at step 2" in second.stderr
    assert "teacher: encoding" not in second.stderr and cache.stat().st_mtime_ns == stamp
    state = torch.load(run / "checkpoints" / "000003.pt", weights_only=True)
    assert state["step"] == 3 and {"audio2exp", "g_optim", "config"} <= set(state)

    import demo_EDTalk_A

    out = tmp_path / "from_audio.mp4"
    args = ["--source_path", MEDIA / "identity_source.jpg", "--no_crop", "--quiet", "--exp_from_audio"]
    args += ["--audio_driving_path", short_speech, "--ckpt_dir", narrow_ckpts]
    args += ["--audio2exp_model_path", run / "checkpoints" / "000003.pt", "--save_path", out]
    assert demo_EDTalk_A.main(list(map(str, args))) == 0
    assert out.stat().st_size > 0


def rendered(pipe, speech, **options):
    with pipe.render(MEDIA / "identity_source.jpg", audio=speech, **options) as result:
        return np.concatenate(list(result.frames))


def test_pipeline_takes_the_expression_from_the_audio_when_nothing_else_sets_it(
    narrow_ckpts, audio2exp_ckpt, short_speech, caplog
):
    from edtalk.pipeline import TalkingHeadPipeline

    settings = dict(ckpt_dir=narrow_ckpts, device="cpu", crop=False, progress=False, precision="fp32")
    without = TalkingHeadPipeline(**settings)  # no Audio2Exp.pt in the checkpoint folder
    with caplog.at_level("INFO"):
        fixed = rendered(without, short_speech)
    assert "the source keeps its own expression" in caplog.text and "Audio2Exp.pt" in caplog.text
    np.testing.assert_array_equal(fixed, rendered(without, short_speech, exp_from_audio=False))

    pipe = TalkingHeadPipeline(**settings, audio2exp_path=audio2exp_ckpt)
    assert pipe.motion.model("exp").context == 3 + 4  # sizes read from the checkpoint: depth 2, smoothing radius 4
    caplog.clear()
    with caplog.at_level("INFO"):
        auto = rendered(pipe, short_speech)
    assert "it sounds" in caplog.text and "confidence" in caplog.text
    np.testing.assert_array_equal(auto, rendered(pipe, short_speech, exp_from_audio=True))
    assert np.abs(auto.astype(int) - fixed).mean() > 0.5  # the predicted expression changed the face
    assert pipe.exp_from_audio(short_speech).shape == (3, 10)


def test_expression_from_audio_conflicts_and_missing_checkpoints_are_one_line_errors(narrow_ckpts, short_speech):
    from edtalk import CheckpointError, EDTalkError, load_audio2exp
    from edtalk.pipeline import TalkingHeadPipeline

    pipe = TalkingHeadPipeline(narrow_ckpts, device="cpu", crop=False, progress=False)
    with pytest.raises(EDTalkError, match="not both"):
        pipe.render(
            MEDIA / "identity_source.jpg", audio=short_speech, exp=MEDIA / "identity_source.jpg", exp_from_audio=True
        )
    with pytest.raises(CheckpointError, match="Audio2Exp.pt; train one with train/train_audio2exp.py"):
        pipe.render(MEDIA / "identity_source.jpg", audio=short_speech, exp_from_audio=True)
    lip_pose = TalkingHeadPipeline(narrow_ckpts, model="lip_pose", device="cpu", crop=False, progress=False)
    with pytest.raises(EDTalkError, match="needs the full generator"):
        lip_pose.render(MEDIA / "identity_source.jpg", audio=short_speech, exp_from_audio=True)
    with pytest.raises(CheckpointError, match="Audio2Lip.pt is an Audio2Lip checkpoint"):
        load_audio2exp(narrow_ckpts / "Audio2Lip.pt")
