"""Live sessions: streamed audio in any chunking gives the offline mouth and frames (after the
look-ahead), silence closes the mouth, and a slow renderer drops frames evenly without drifting."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edtalk import audio as audio_io
from edtalk.checkpoints import LIP_POSE
from edtalk.errors import AudioError
from edtalk.inputs import whole_frame
from edtalk.live import LiveOptions, LiveSession
from edtalk.live.features import FRAME_SAMPLES
from edtalk.live.pacing import FramePacer
from edtalk.options import PipelineOptions
from edtalk.torch_backend import TorchGenerator
from edtalk.video_io import read_image
from networks.audio2pose import Audio2Pose

from .conftest import MEDIA, ROOT

FRAMES = 25  # 1 s of the speech sample
WARM_UP = 1  # renders a session makes before the stream (LiveSession._warm_up)


class FakeClock:
    """Seconds that advance only when told (a render's cost)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class StubRenderer:
    """A generator backend that draws nothing, costs `cost` seconds of the fake clock per frame and
    records the head pose of every frame it draws (None: the source's own)."""

    def __init__(self, clock: FakeClock, cost: float = 0.0):
        self.clock, self.cost = clock, cost
        self.device = torch.device("cpu")
        self.config = type("Config", (), {"has_expression": False})()
        self.poses = []

    def encode_source(self, crops):
        return None

    def motion(self, crops, parts):
        return {part: torch.zeros(len(crops), 6) for part in parts}

    def animate(self, encoded, lip, pose, exp):
        self.clock.now += self.cost * len(lip)
        self.poses.append(None if pose is None else pose[0].clone())
        return np.zeros((len(lip), 8, 8, 3), np.uint8)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return audio_io.load_wav(MEDIA / "speech_16k.wav")[: FRAMES * FRAME_SAMPLES]


@pytest.fixture(scope="module")
def offline_lip(speech, audio2lip) -> torch.Tensor:
    """The offline pipeline's mouth: whole-clip mel windows, Audio2Lip, smoothing over the clip."""
    windows = audio_io.windows_from_mel(audio_io.melspectrogram(speech), FRAMES)
    return audio2lip.predict(torch.from_numpy(windows))


def pipeline_options(ckpts, **extra) -> PipelineOptions:
    return PipelineOptions(ckpt_dir=ckpts, model=LIP_POSE, device="cpu", precision="fp32", crop=False, **extra)


def stream(session: LiveSession, samples: np.ndarray, chunk: int, rate: int = 16000) -> list:
    frames = []
    for start in range(0, len(samples), chunk):
        frames += session.push(samples[start : start + chunk], rate)
    return frames + session.close()


def stub_session(ckpts, clock=None, cost=0.0, pipeline=None, **live) -> LiveSession:
    clock = clock or FakeClock()
    source = np.zeros((256, 256, 3), np.uint8)
    pipeline = pipeline or pipeline_options(ckpts)
    return LiveSession(source, pipeline, LiveOptions(**live), StubRenderer(clock, cost), clock)


@pytest.mark.parametrize("chunk_ms", [10, 40, 137, 1000])
def test_mouth_equals_the_offline_mouth_for_any_chunking(narrow_ckpts, speech, offline_lip, chunk_ms):
    frames = stream(stub_session(narrow_ckpts), speech, 16 * chunk_ms)
    assert [f.index for f in frames] == list(range(FRAMES))
    lip = torch.from_numpy(np.stack([f.lip for f in frames]))
    torch.testing.assert_close(lip, offline_lip, atol=2e-5, rtol=1e-4)
    assert [(f.start, f.end) for f in frames[:2]] == [(0, 640), (640, 1280)]
    assert frames[-1].end_s == pytest.approx(FRAMES / 25)


def test_exact_mode_waits_for_its_look_ahead_and_low_mode_does_not(narrow_ckpts, speech, offline_lip):
    exact, low = stub_session(narrow_ckpts), stub_session(narrow_ckpts, latency="low")
    ten_frames = speech[: 10 * FRAME_SAMPLES]
    # frame i's smoothed row needs frame i + 1's window, which reads 1480 samples past frame i + 1's end
    assert [f.index for f in exact.push(ten_frames)] == list(range(6))
    assert [f.index for f in low.push(ten_frames)] == list(range(10))
    by_chunk = [
        np.stack([f.lip for f in stream(stub_session(narrow_ckpts, latency="low"), speech, n)]) for n in (160, 16000)
    ]
    np.testing.assert_allclose(by_chunk[0], by_chunk[1], atol=2e-5, rtol=1e-4)
    cost = np.abs(by_chunk[0] - offline_lip.numpy()).mean() / offline_lip.numpy().std()
    assert 0 < cost < 1  # a cheaper, less accurate mouth (docs/live.md gives the measure)


def test_silence_closes_the_mouth(narrow_ckpts, speech):
    session = stub_session(narrow_ckpts)
    noise = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), 25 * FRAME_SAMPLES).astype(np.float32)
    frames = stream(session, np.concatenate([speech[: 15 * FRAME_SAMPLES], noise]), 800)
    lip = np.stack([f.lip for f in frames])
    rest = session.lip.rest.numpy()  # the mouth Audio2Lip draws for digital silence
    np.testing.assert_allclose(lip[15 + 5 : -1], np.broadcast_to(rest, lip[20:-1].shape), atol=1e-5)
    assert np.abs(lip[:12] - rest).max(axis=1).min() > 1e-3  # while speaking it is not at rest


def test_the_head_idles_in_silence_with_audio2pose_and_stays_still_without(narrow_ckpts, speech, tmp_path):
    torch.manual_seed(0)  # an untrained flow: its motion is the speech-independent part the idle head shows
    torch.save({"audio2pose": Audio2Pose(hidden=16, steps=1).state_dict()}, tmp_path / "Audio2Pose.pt")
    clip = np.concatenate([speech[: 4 * FRAME_SAMPLES], np.zeros(16 * FRAME_SAMPLES, np.float32)])
    pose_ckpt = pipeline_options(narrow_ckpts, audio2pose_path=tmp_path / "Audio2Pose.pt")
    idle = stub_session(narrow_ckpts, pipeline=pose_ckpt)
    still = stub_session(narrow_ckpts, pipeline=pipeline_options(narrow_ckpts, audio2pose_path=tmp_path / "no.pt"))
    stream(idle, clip, 800), stream(still, clip, 800)
    idle_poses, still_poses = idle.renderer.poses[WARM_UP:], still.renderer.poses[WARM_UP:]
    assert len(idle_poses) == len(still_poses) == 20
    silent = torch.stack(idle_poses[9:])  # frames whose audio (window and pose context) is all silence
    assert silent.shape == (11, 6) and silent.std(0).min() > 1e-3  # the head keeps moving, not frozen
    assert silent.abs().max() < 10  # and stays near its rest (no drift away)
    assert still_poses == [None] * 20  # no checkpoint: the source's own pose on every frame


def test_a_slow_renderer_drops_frames_evenly_and_keeps_the_sample_clock(narrow_ckpts, speech):
    session = stub_session(narrow_ckpts, cost=0.1)  # 100 ms a frame: 10 of every 25 frames fit
    frames = stream(session, speech, 800)
    indices = np.array([f.index for f in frames])
    assert indices[0] == 0 and set(np.diff(indices)) <= {2, 3}
    assert abs(len(frames) - 0.4 * FRAMES) <= 2
    assert session.stats["frames"] == FRAMES and session.stats["dropped"] == FRAMES - len(frames)
    assert session.stats["achieved_fps"] == pytest.approx(10, abs=1.5)
    assert all(f.start == f.index * FRAME_SAMPLES for f in frames)  # timestamps from the audio, not the clock


def test_the_pacer_pays_for_all_compute_and_catches_up_after_a_stall():
    """A 100 ms render, 20 ms of audio-side work per frame and one 2-s stall: the renders use the
    20 ms a frame the audio side leaves (one frame in five, less the stall's), and the stall is paid back by dropping,
    so the compute ends no later than the audio plus one render."""
    clock = FakeClock()
    pacer = FramePacer(25, clock)
    lag = []
    for frame in range(250):  # 10 s of audio arriving in real time from clock 0
        with pacer.spending():
            clock.now += 0.02
        if pacer.keep():
            with pacer.spending():
                clock.now += 0.1 + (2.0 if pacer.rendered == 10 else 0.0)
        lag.append(clock.now - (frame + 1) * 0.04)
    assert max(lag) > 2.0  # the stall put it behind
    assert max(lag[-100:]) <= 0.1 + 0.02 + 1e-9  # and it caught up
    assert 28 <= pacer.rendered <= 32  # (10 s - 5 s audio side - 2 s stall) / 100 ms


def test_frames_equal_the_offline_render(narrow_ckpts, narrow_lip_pose_generator, speech, offline_lip):
    source = read_image(MEDIA / "identity_source.jpg")
    session = LiveSession(source, pipeline_options(narrow_ckpts), clock=FakeClock())  # no time passes: no drops
    frames = stream(session, speech[: 12 * FRAME_SAMPLES], 1600)[:8]  # frame 7 reads audio up to frame 11
    renderer = TorchGenerator(narrow_lip_pose_generator, LIP_POSE, torch.device("cpu"), torch.float32)
    expected = renderer.animate(
        renderer.encode_source(whole_frame(source, "source")[0][None]), offline_lip[:8], None, None
    )
    got = np.stack([f.image for f in frames])
    assert got.shape == (8, 256, 256, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # uint8 rounding of fp32 noise


def test_input_errors_are_one_line(narrow_ckpts, speech):
    session = stub_session(narrow_ckpts)
    with pytest.raises(AudioError, match="mono float"):
        session.push(np.zeros((10, 2), np.float32))
    session.push(speech[:1000], 16000)
    with pytest.raises(AudioError, match="changed from 16000 to 48000 Hz"):
        session.push(speech[:1000], 48000)


def test_other_sample_rates_are_resampled_as_they_arrive(narrow_ckpts, speech, offline_lip):
    import librosa

    fast = librosa.resample(speech, orig_sr=16000, target_sr=48000, res_type="soxr_hq")
    frames = stream(stub_session(narrow_ckpts), fast, 4800, 48000)
    assert len(frames) == FRAMES
    lip = np.stack([f.lip for f in frames])
    assert np.abs(lip - offline_lip.numpy()).mean() < 0.05 * offline_lip.numpy().std()


def test_the_benchmark_writes_every_figure_the_issue_names(narrow_ckpts, tmp_path):
    """benchmarks/bench_live.py streams 1 s of speech in real time (a slow CPU drops frames, which
    is what the figures report) and writes the figures as JSON."""
    out = tmp_path / "live.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_live.py"), "--ckpt_dir", str(narrow_ckpts)]
    cmd += ["--device", "cpu", "--backend", "torch", "--seconds", "1", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["frames"] == FRAMES and figures["rendered"] + figures["dropped_frames"] == FRAMES
    assert 0 < figures["fps"] <= FRAMES and figures["max_drift_ms"] >= 0
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p95_ms"]
    assert figures["backend"] == "torch" and figures["device"] == "cpu"


def test_the_streaming_mel_runs_numpys_blas_on_one_thread(speech, monkeypatch):
    """numpy's BLAS threads would busy-wait on the cores torch renders on (edtalk/live/features.py)."""
    from threadpoolctl import threadpool_info

    from edtalk.live import features

    def blas_threads():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen, compute = [], features.audio_io.mel_frames
    monkeypatch.setattr(features.audio_io, "mel_frames", lambda *a: seen.append(blas_threads()) or compute(*a))
    before = blas_threads()
    windows, _ = features.StreamingMel().push(speech)
    assert len(windows) > 0 and seen == [{1}]
    assert blas_threads() == before
