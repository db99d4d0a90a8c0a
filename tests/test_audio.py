"""Audio front end and Audio2Lip against the official pipeline (audio_ref.npz), plus other formats."""

import subprocess
import tracemalloc

import imageio_ffmpeg
import librosa
import numpy as np
import pytest
import soundfile
import torch

from edtalk import AudioError, audio, predict_from_mel
from networks import gaussian_kernel

from .conftest import MEDIA, PARITY

SPEECH = MEDIA / "speech_16k.wav"

# Mel values lie in [-4, 4] (float32 ulp there: 4.8e-7). The float64 STFT / mel matrix product
# can round differently on other CPUs or BLAS builds, which may flip the last float32 bit; we
# measured 0 difference to the official fixtures on Intel AVX-512/AMX and with MKL/OpenBLAS
# restricted to AVX2/Haswell kernels. 1e-5 allows that with a wide margin and still catches any
# real change (a one-frame shift moves windows by 0.87 on average).
MEL_ATOL = 1e-5


@pytest.fixture(scope="module")
def ref():
    with np.load(PARITY / "audio_ref.npz") as data:
        return {k: data[k] for k in data.files}


def test_load_wav_matches_official(ref):
    wav = audio.load_wav(SPEECH)
    assert wav.dtype == np.float32
    # Exact by construction: int16 / 32768 is exact in float32 on every machine.
    np.testing.assert_array_equal(wav, ref["wav_float32_loaded"])
    np.testing.assert_array_equal(wav, ref["wav_int16"].astype(np.float32) / 32768)


def test_mel_and_windows_match_official(ref):
    wav = audio.load_wav(SPEECH)
    t = audio.frame_count(len(wav))
    assert t == 85
    mel = audio.melspectrogram(wav[: t * 640])
    np.testing.assert_allclose(mel.astype(np.float32), ref["orig_mel"], atol=MEL_ATOL, rtol=0)
    windows = audio.mel_windows(SPEECH, fps=25)
    assert windows.dtype == np.float32 and windows.shape == (85, 1, 80, 16)
    np.testing.assert_allclose(windows, ref["mel_windows"], atol=MEL_ATOL, rtol=0)


def test_chunked_windows_match_official(ref):
    wav, frames = audio.load_for_video(SPEECH)
    chunks = list(audio.mel_window_chunks(wav, frames, chunk=7))
    assert [len(c) for c in chunks] == [7] * 12 + [1]
    np.testing.assert_allclose(np.concatenate(chunks), ref["mel_windows"], atol=MEL_ATOL, rtol=0)


def test_long_audio_is_streamed_from_disk(tmp_path):
    path = tmp_path / "long.wav"
    seconds = 300
    soundfile.write(path, np.resize(audio.load_wav(SPEECH), 16000 * seconds), 16000, subtype="PCM_16")
    wav, frames = audio.load_for_video(path)
    assert isinstance(wav, audio.Waveform) and frames == 25 * seconds
    streamed = audio.mel_window_chunks(wav, frames, chunk=64)
    first = next(streamed)  # also librosa's one-time set-up
    tracemalloc.start()
    for _ in range(5):
        next(streamed)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.25 * 16000 * seconds * 4  # far below the clip as float32 samples (19 MB)
    whole = audio.load_wav(path)[: len(wav)]
    # Exact: the same samples through the same code path with the same chunk ranges, so the
    # same arithmetic on the same machine (only where the samples are read from differs).
    np.testing.assert_array_equal(first, next(audio.mel_window_chunks(whole, frames, chunk=64)))


def test_window_start_is_the_official_formula_at_25fps():
    assert [audio.window_start(i) for i in range(4)] == [-6, -3, 0, 3]
    assert all(audio.window_start(i) == int(80.0 * ((i - 2) / 25.0)) for i in range(0, 50000, 7))


def test_other_frame_rates_centre_the_window():
    windows = audio.mel_windows(SPEECH, fps=30)
    assert windows.shape == (int(55016 / (16000 / 30)), 1, 80, 16)
    mel = audio.melspectrogram(audio.load_wav(SPEECH)[: int(len(windows) * 16000 / 30)]).astype(np.float32)
    i = 40  # frame 40 at 30 fps is centred at 1.35 s = mel frame 108; its window is 100..115
    assert audio.window_start(i, fps=30) == 100
    # Not the same arithmetic (the windows' STFT covers fewer frames than the whole spectrogram,
    # so the BLAS product has another shape): equal here, but allow last-bit differences.
    np.testing.assert_allclose(windows[i, 0], mel[100:116].T, atol=MEL_ATOL, rtol=0)


def test_audio2lip_matches_official(audio2lip, ref):
    windows = torch.from_numpy(ref["mel_windows"])
    raw = audio2lip(windows)
    assert raw.shape == (85, 20)
    # measured max abs difference: 1.0e-5 raw and 8.8e-6 smoothed (Intel AVX-512/AMX), 1.0e-5 with
    # MKL/oneDNN restricted to AVX2; coefficients are O(1)
    np.testing.assert_allclose(raw.numpy(), ref["audio2lip_raw"], atol=5e-5, rtol=0)
    smoothed = audio2lip.predict(windows, chunk=16)  # chunked encoding is exact in eval mode
    np.testing.assert_allclose(smoothed.numpy(), ref["audio2lip_smoothed"], atol=5e-5, rtol=0)
    # float64 exp cast to float32 (values 0.27..0.45): equal here; allow a last-bit flip elsewhere
    kernel = ref["smoothing_kernel"].astype(np.float32)
    np.testing.assert_allclose(gaussian_kernel(3, 1.0).numpy(), kernel, atol=1e-7, rtol=0)


def test_audio2lip_rejects_wrong_window_shape(audio2lip):
    """A library user's windows are checked by edtalk.predict_from_mel (the network checks nothing)."""
    with pytest.raises(AudioError, match=r"^mel windows must be \(T, 1, 80, 16\) .*got \(5, 80, 16\)$"):
        predict_from_mel(audio2lip, torch.zeros(5, 80, 16))
    assert predict_from_mel(audio2lip, torch.zeros(3, 1, 80, 16)).shape == (3, 20)


# ---- any format, any sample rate -----------------------------------------------------------------


def test_resampled_stereo_file_gives_nearly_the_same_windows(tmp_path, ref):
    wav = audio.load_wav(SPEECH)
    stereo = np.stack([wav, wav], axis=1)
    path = tmp_path / "speech_44k_stereo.flac"
    soundfile.write(path, librosa.resample(stereo.T, orig_sr=16000, target_sr=44100).T, 44100)
    windows = audio.mel_windows(path)
    assert windows.shape == (85, 1, 80, 16)
    assert np.abs(windows - ref["mel_windows"]).mean() < 0.01


def test_compressed_audio_through_ffmpeg(tmp_path, ref):
    path = tmp_path / "speech.m4a"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(SPEECH), "-c:a", "aac", "-b:a", "128k", str(path)]
    subprocess.run(cmd, check=True)
    windows = audio.mel_windows(path)
    assert abs(len(windows) - 85) <= 1
    n = min(len(windows), 85)
    assert np.abs(windows[:n] - ref["mel_windows"][:n]).mean() < 0.2  # a one-frame shift gives 0.87


def test_bad_audio_files(tmp_path):
    with pytest.raises(AudioError, match=r"audio file not found: .*nope.wav"):
        audio.mel_windows(tmp_path / "nope.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("this is not audio")
    with pytest.raises(AudioError, match=r"cannot read audio from .*garbage.wav"):
        audio.mel_windows(garbage)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty.wav contains no samples"):
        audio.mel_windows(empty)
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(300, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"short.wav lasts 0.019 s, shorter than one video frame at 25 fps"):
        audio.mel_windows(short)
