"""Audio-to-pose: the flow learns a known stochastic audio -> pose process (likelihood and samples),
samples reproducibly by seed and temperature, streams seamlessly, and its training script runs
under torchrun, resumes and moves the head in demo_EDTalk_A."""

import json
import logging
import math
import subprocess

import numpy as np
import pytest
import torch

from edtalk.checkpoints import LIP_POSE
from edtalk.errors import CheckpointError, EDTalkError
from edtalk.motion import pose_track
from edtalk.pipeline import TalkingHeadPipeline
from networks.audio2pose import Audio2Pose, pose_style
from train.motion_stages import Audio2PoseStage

from .conftest import MEDIA
from .test_teacher import random_frames, write_set
from .test_training import script

# The synthetic process: a loudness u_t in [0, 1] (a slow sine; every mel value of frame t's window
# is 2 u_t - 1) drives x_t = RHO x_(t-1) + GAIN u_t + NOISE (0.3 + u_t) eps_t, eps_t ~ N(0, I):
# louder speech moves the head further and more wildly.
RHO = 0.8
GAIN = torch.tensor([0.5, -0.3, 0.2, 0.4, -0.6, 0.1])
NOISE = torch.tensor([0.05, 0.08, 0.1, 0.06, 0.12, 0.07])
CONTEXT, HISTORY = 2, 2  # the flow's defaults, used by the synthetic windows


def loudness(n: int, t: int, rng: torch.Generator) -> torch.Tensor:
    """(n, t) slow sines in [0, 1] with random frequencies and phases."""
    freq = 0.02 + 0.08 * torch.rand(n, 1, generator=rng)
    phase = 2 * math.pi * torch.rand(n, 1, generator=rng)
    return 0.5 + 0.5 * torch.sin(2 * math.pi * freq * torch.arange(t) + phase)


def poses_of(u: torch.Tensor, start: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """(n, t, 6) poses of the process driven by u (n, t) from x_(-1) = start (n, 6)."""
    x, out = start, []
    for t in range(u.shape[1]):
        eps = torch.randn(len(u), 6, generator=rng)
        x = RHO * x + GAIN * u[:, t, None] + NOISE * (0.3 + u[:, t, None]) * eps
        out.append(x)
    return torch.stack(out, 1)


def mel_windows(u: torch.Tensor) -> torch.Tensor:
    """(..., t) loudness -> (..., t, 1, 80, 16) mel windows."""
    return (2 * u - 1)[..., None, None, None].expand(*u.shape, 1, 80, 16)


def synthetic_batch(n: int, length: int, rng: torch.Generator) -> tuple[dict, torch.Tensor]:
    """A training batch as PoseWindowDataset gives it (no style), and the window's loudness (n, length)."""
    u = loudness(n, HISTORY + length + CONTEXT, rng)
    x = poses_of(u, torch.zeros(n, 6), rng)
    batch = {
        "pose": x[:, HISTORY : HISTORY + length],
        "mels": mel_windows(u[:, HISTORY - CONTEXT :]),
        "past": x[:, :HISTORY],
        "style": torch.zeros(n, 13),
    }
    return batch, u[:, HISTORY : HISTORY + length]


def true_entropy(u: torch.Tensor) -> torch.Tensor:
    """Mean conditional entropy per frame (nats) of x_t given the past and the audio: the Gaussian's."""
    return (0.5 * torch.log(2 * math.pi * math.e * (NOISE * (0.3 + u[..., None])) ** 2)).sum(-1).mean()


@pytest.fixture(scope="module")
def fitted():
    """(model fitted to the process by the stage's loss, NLL per frame before, NLL after, true entropy)."""
    torch.manual_seed(0)
    stage, model = Audio2PoseStage(), Audio2Pose(hidden=64, steps=4, history_dropout=0.0)
    with torch.no_grad():
        big, _ = synthetic_batch(256, 32, torch.Generator().manual_seed(1))
    model.set_normalization(big["pose"].flatten(0, 1).mean(0), big["pose"].flatten(0, 1).std(0))
    models = {"audio2pose": model}
    held_out, u = synthetic_batch(32, 32, torch.Generator().manual_seed(99))

    def nll():
        model.eval()
        value = stage.validation_metrics(models, held_out)["nll"].mean().item()
        model.train()
        return value

    before = nll()
    optim = torch.optim.Adam(model.parameters(), lr=5e-3)
    rng = torch.Generator().manual_seed(2)
    with torch.enable_grad():
        for step in range(400):
            if step == 280:
                optim.param_groups[0]["lr"] = 1e-3
            losses, images = stage.generator_losses(models, synthetic_batch(16, 24, rng)[0])
            optim.zero_grad()
            losses["nll"].backward()
            optim.step()
    assert images["rows"][1].shape == (16, 3, 6, 24)
    after = nll()
    return model.eval(), before, after, true_entropy(u).item()


def test_validation_nll_approaches_the_true_conditional_entropy(fitted):
    _, before, after, entropy = fitted
    assert before > entropy + 3
    assert entropy - 0.15 < after < entropy + 0.35, (after, entropy)


def test_samples_reproduce_the_conditional_mean_and_spread(fitted):
    model = fitted[0]
    n, t = 256, 40
    u = loudness(1, t, torch.Generator().manual_seed(7))[0]
    start = GAIN * 0.5 / (1 - RHO)
    samples = model.generate(mel_windows(u).expand(n, -1, -1, -1, -1), start.expand(n, -1), temperature=1.0, seed=3)
    mean, var, means, stds = start, torch.zeros(6), [], []  # the exact marginals of x_t given x_(-1) = start
    for i in range(t):
        mean = RHO * mean + GAIN * u[i]
        var = RHO**2 * var + (NOISE * (0.3 + u[i])) ** 2
        means.append(mean)
        stds.append(var.sqrt())
    means, stds = torch.stack(means), torch.stack(stds)
    assert ((samples.mean(0) - means).abs() / stds).mean() < 0.3  # audio ignored: several standard deviations
    ratio = samples.std(0) / stds
    assert 0.8 < ratio.mean() < 1.2 and ratio.min() > 0.5
    # the deterministic path (temperature 0) follows the mean path
    mode = model.generate(mel_windows(u), start, temperature=0.0)
    assert ((mode - means).abs() / stds).mean() < 0.5


def test_seed_and_temperature(fitted):
    model = fitted[0]
    u = loudness(1, 30, torch.Generator().manual_seed(8))[0]
    windows, start = mel_windows(u), torch.zeros(6)
    still = [model.generate(windows, start, temperature=0.0, seed=s) for s in (0, 1)]
    assert torch.equal(still[0], still[1])
    again = [model.generate(windows, start, temperature=0.7, seed=s) for s in (5, 5, 6)]
    assert torch.equal(again[0], again[1])
    assert (again[0] - again[2]).abs().max() > 1e-2
    assert (again[0] - still[0]).abs().max() > 1e-2
    with pytest.raises(ValueError, match="temperature"):
        model.generate(windows, start, temperature=-1.0)


@pytest.mark.parametrize("sizes", [(1,) * 9, (3, 1, 2, 11), (17,)])
def test_streamed_chunks_equal_the_one_shot_clip(fitted, sizes):
    model = fitted[0]
    u = loudness(1, sum(sizes), torch.Generator().manual_seed(9))[0]
    windows, start = mel_windows(u), torch.full((6,), 0.3)
    whole = model.generate(windows, start, temperature=1.0, seed=4)
    stream, parts = model.stream(start, temperature=1.0, seed=4), []
    for chunk in windows.split(list(sizes)):
        parts.append(stream.push(chunk)[0])
    parts.append(stream.finish()[0])
    torch.testing.assert_close(torch.cat(parts), whole, atol=1e-5, rtol=1e-5)
    assert whole.shape == (sum(sizes), 6)


def test_pose_track_is_independent_of_the_chunk_size_and_continuous(fitted):
    model = fitted[0]
    audio = MEDIA / "speech_16k.wav"
    small = pose_track(model, audio, 60, torch.zeros(6), temperature=0.7, seed=1, chunk=16)
    large = pose_track(model, audio, 60, torch.zeros(6), temperature=0.7, seed=1, chunk=256)
    torch.testing.assert_close(small, large, atol=1e-5, rtol=1e-5)
    steps = small.diff(dim=0).norm(dim=1)
    assert steps[15] < 4 * steps.median() and steps[31] < 4 * steps.median()  # frames 15|16, 31|32: chunk borders


def lively_batch(n: int, length: int, rng: torch.Generator, scale: torch.Tensor | None = None) -> dict:
    """Windows of x_t = RHO x_(t-1) + 0.3 k NOISE eps_t, silent audio; the liveliness k (n,) of each clip
    (uniform in 0.3..2 unless given) shows only in its style, taken from another 64 frames of it."""
    k = 0.3 + 1.7 * torch.rand(n, generator=rng) if scale is None else scale
    x = poses_of(torch.zeros(n, 64 + HISTORY + length), torch.zeros(n, 6), rng) * k[:, None, None]
    return {
        "pose": x[:, 64 + HISTORY :],
        "mels": mel_windows(torch.zeros(n, length + 2 * CONTEXT)),
        "past": x[:, 64 : 64 + HISTORY],
        "style": torch.stack([pose_style(clip[:64]) for clip in x]),
    }


def test_a_calm_or_a_lively_reference_clip_sets_the_spread():
    torch.manual_seed(0)
    stage, model = Audio2PoseStage(), Audio2Pose(hidden=32, steps=2, history_dropout=0.0)
    rng = torch.Generator().manual_seed(0)
    poses = lively_batch(256, 16, rng)["pose"].flatten(0, 1)
    model.set_normalization(poses.mean(0), poses.std(0))
    models = {"audio2pose": model}
    optim = torch.optim.Adam(model.parameters(), lr=5e-3)
    with torch.enable_grad():
        for _ in range(150):
            losses, _ = stage.generator_losses(models, lively_batch(16, 16, rng))
            optim.zero_grad()
            losses["nll"].backward()
            optim.step()
    model.eval()
    spread = {}
    for k in (0.5, 1.5):
        reference = lively_batch(1, 1, torch.Generator().manual_seed(5), torch.tensor([k]))["style"][0]
        paths = model.generate(mel_windows(torch.zeros(64, 30)), torch.zeros(64, 6), reference, 1.0, seed=1)
        spread[k] = paths[:, 10:].std().item()  # NOISE's scale, times k / sqrt(1 - RHO^2)
    assert 2.0 < spread[1.5] / spread[0.5] < 4.5, spread  # the process's ratio: 3


def test_style_is_the_clip_statistics():
    poses = torch.tensor([[0.0] * 6, [2.0] * 6])
    torch.testing.assert_close(pose_style(poses), torch.tensor([1.0] * 6 + [1.0] * 6 + [1.0]))
    assert torch.equal(pose_style(None), torch.zeros(13))


def test_pipeline_reproduces_by_seed_takes_a_style_and_says_why_the_head_stays_still(
    fitted, narrow_ckpts, tmp_path, caplog
):
    ckpt, photo, audio = tmp_path / "Audio2Pose.pt", MEDIA / "identity_source.jpg", MEDIA / "speech_16k.wav"
    torch.save({"audio2pose": fitted[0].state_dict()}, ckpt)
    pipe = TalkingHeadPipeline(narrow_ckpts, LIP_POSE, "cpu", crop=False, progress=False, audio2pose_path=ckpt)
    src = pipe.load_source(photo)
    plain = pipe.pose_from_audio(audio, 40, src, 0.7, 1, None)
    torch.testing.assert_close(pipe.pose_from_audio(audio, 40, src, 0.7, 1, None), plain)
    styled = pipe.pose_from_audio(audio, 40, src, 0.7, 1, photo)  # one frame: the photo's pose, no spread
    assert plain.shape == styled.shape == (40, 6) and (plain - styled).abs().max() > 1e-3
    with pipe.render(photo, audio=audio, pose_style=photo) as result:
        assert result.num_frames > 0
    with pytest.raises(EDTalkError, match="not both"):
        pipe.render(photo, audio=audio, pose=photo, pose_from_audio=True)
    with pytest.raises(EDTalkError, match="temperature must be 0 or more"):
        pipe.render(photo, audio=audio, pose_temperature=-0.5)
    with pytest.raises(EDTalkError, match="needs pose from the audio"):
        pipe.render(photo, audio=audio, pose_from_audio=False, pose_style=photo)

    missing = TalkingHeadPipeline(
        narrow_ckpts, LIP_POSE, "cpu", crop=False, progress=False, audio2pose_path=tmp_path / "none.pt"
    )
    with caplog.at_level(logging.INFO), missing.render(photo, audio=audio):
        assert "the head stays still" in caplog.text and "train_audio2pose.py" in caplog.text
    with pytest.raises(CheckpointError, match="train_audio2pose.py"):
        missing.render(photo, audio=audio, pose_from_audio=True)


def pose_set(root):
    """Three clips of 10 frames with audio (two to train, one to validate)."""
    rng = np.random.default_rng(0)
    clips = {f"P{i}": (random_frames(rng, 10), rng.uniform(-4, 4, (34, 80)).astype(np.float32)) for i in range(3)}
    return write_set(root, clips, held_out=("P2",))


def test_script_under_torchrun_resumes_and_moves_the_head_in_the_demo(tmp_path, narrow_ckpts, monkeypatch):
    data, run = pose_set(tmp_path / "set"), tmp_path / "run"
    common = ["--data", data, "--generator", narrow_ckpts / "EDTalk_lip_pose.pt", "--run_dir", run, "--window", 6]
    common += ["--batch_size", 1, "--workers", 0, "--log_every", 1, "--save_every", 1, "--val_every", 1]
    cmd, env = script("train_audio2pose", *common, "--steps", 2, nproc=2)
    try:
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["pkill", "-KILL", "-f", str(run)], check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 2 and stats[-1]["replica_divergence"] == 0
    assert {"nll", "val_nll"} <= set(stats[-1]) and math.isfinite(stats[-1]["val_nll"])
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "samples" / "000002.png").is_file()

    cmd, env = script("train_audio2pose", *common, "--steps", 3, "--resume", "auto")
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "at step 2" in second.stderr
    state = torch.load(run / "checkpoints" / "000003.pt", weights_only=True)
    assert state["step"] == 3 and {"audio2pose", "g_optim", "config"} <= set(state)
    teacher_poses = np.concatenate([np.load(p)["pose"] for p in data.glob("teacher-*.npz")])
    torch.testing.assert_close(state["audio2pose"]["pose_mean"], torch.from_numpy(teacher_poses[:20].mean(0)))

    import demo_EDTalk_A
    from networks import Generator

    poses = []
    animate = Generator.animate
    monkeypatch.setattr(
        Generator,
        "animate",
        lambda self, s, lip, pose=None, exp=None: poses.append(pose) or animate(self, s, lip, pose, exp),
    )
    out = tmp_path / "moving.mp4"
    args = ["--source_path", MEDIA / "identity_source.jpg", "--no_crop", "--quiet", "--batch_size", 4]
    args += ["--audio_driving_path", MEDIA / "speech_16k_e2e.wav", "--ckpt_dir", narrow_ckpts, "--seed", 3]
    args += ["--audio2pose_model_path", run / "checkpoints" / "000003.pt", "--save_path", out]
    assert demo_EDTalk_A.main(list(map(str, args))) == 0
    assert out.stat().st_size > 0
    track = torch.cat(poses)
    assert track.shape == (12, 6) and track.std(0).min() > 1e-4  # the head moves
