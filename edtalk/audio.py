"""Audio front end: any audio file -> 16 kHz mono -> Wav2Lip mel spectrogram -> per-frame windows.

Matches the official EDTalk/Wav2Lip `hparams` pipeline: pre-emphasis, STFT with reflect padding,
Slaney mel filter bank, dB with a -100 dB floor and symmetric normalisation to [-4, 4]. One mel
window of 16 frames (200 ms) per output video frame, centred on that frame.
"""

import functools
import math
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile

from .errors import AudioError
from .video_io import stream_kinds


@dataclass(frozen=True)
class AudioConfig:
    """The official `hparams.py` values."""

    sample_rate: int = 16000  # Hz
    n_fft: int = 800
    hop_size: int = 200  # 12.5 ms: 80 mel frames per second
    win_size: int = 800  # 50 ms
    num_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0  # symmetric normalisation to [-4, 4]
    window_frames: int = 16  # mel frames per video-frame window (200 ms)

    @property
    def mel_fps(self) -> float:
        return self.sample_rate / self.hop_size


DEFAULT = AudioConfig()


def _decode_with_ffmpeg(path: Path, out_wav: Path) -> None:
    """Decode any container/codec ffmpeg knows (m4a, aac, mp4, webm, ...) to float WAV."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(path), "-vn"]
    cmd += ["-acodec", "pcm_f32le", str(out_wav)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not out_wav.exists():
        kinds = stream_kinds(path)
        if kinds and "Audio" not in kinds:
            raise AudioError(f"{path} has no audio track (it holds only {', '.join(sorted(kinds)).lower()})")
        reason = (result.stderr.strip().splitlines() or ["no audio stream"])[-1]
        raise AudioError(f"cannot read audio from {path}: {reason}")


def _readable(path: Path) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A file soundfile can read with the same samples: `path` itself, or a float WAV decoded by
    ffmpeg into a temporary folder (returned too, so the caller keeps it alive)."""
    try:
        soundfile.info(str(path))
        return path, None
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        pass
    tmp = tempfile.TemporaryDirectory(prefix="edtalk_audio_")
    decoded = Path(tmp.name) / "decoded.wav"
    _decode_with_ffmpeg(path, decoded)
    return decoded, tmp


class Waveform:
    """Mono samples of an audio file, read from disk on demand so that a long clip is never held
    whole in memory. `wav[indices]` (an integer array) and `wav.read(lo, hi)` return float32
    samples; channels are averaged as in `librosa.load`. `head(n)` is the first n samples."""

    def __init__(self, path: Path, length: int, keep: tempfile.TemporaryDirectory | None = None):
        self.path, self.length = path, length
        self._keep = keep  # a temporary folder holding `path`, removed with the last user

    def __len__(self) -> int:
        return self.length

    def head(self, n: int) -> "Waveform":
        return Waveform(self.path, min(n, self.length), self._keep)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Samples lo..hi-1 (0 <= lo <= hi <= len), float32."""
        with soundfile.SoundFile(str(self.path)) as f:
            f.seek(lo)
            block = f.read(hi - lo, dtype="float32", always_2d=True)
        return np.ascontiguousarray(block.mean(axis=1) if block.shape[1] > 1 else block[:, 0], dtype=np.float32)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        lo = int(index.min())
        return self.read(lo, int(index.max()) + 1)[index - lo]


def open_waveform(path: str | Path, sample_rate: int | None = DEFAULT.sample_rate) -> Waveform:
    """Open any audio file (or a video's audio track) as mono samples at `sample_rate` (None: the
    file's own rate, e.g. only to check that it is readable), read on demand.

    A file at another sample rate is resampled once (soxr_hq, as librosa >= 0.10) into a temporary
    float WAV: only then is the whole clip in memory, briefly. For 16-bit PCM WAV at 16 kHz the
    samples are exactly the official `librosa.load(path, sr=16000)`.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    readable, keep = _readable(path)
    info = soundfile.info(str(readable))
    if info.frames == 0:
        raise AudioError(f"audio file {path} contains no samples")
    wav = Waveform(readable, info.frames, keep)
    if sample_rate is None or info.samplerate == sample_rate:
        return wav
    whole = wav.read(0, len(wav))
    samples = librosa.resample(whole, orig_sr=info.samplerate, target_sr=sample_rate, res_type="soxr_hq")
    tmp = tempfile.TemporaryDirectory(prefix="edtalk_audio_")
    out = Path(tmp.name) / "resampled.wav"
    soundfile.write(str(out), samples, sample_rate, subtype="FLOAT")
    return Waveform(out, len(samples), tmp)


def load_wav(path: str | Path, sample_rate: int = DEFAULT.sample_rate) -> np.ndarray:
    """The whole clip as 16 kHz mono float32 samples (see `open_waveform`, better for long clips)."""
    wav = open_waveform(path, sample_rate)
    return wav.read(0, len(wav))


def frame_count(num_samples: int, fps: float = 25.0, sample_rate: int = DEFAULT.sample_rate) -> int:
    """Number of video frames the audio covers: int(samples / (sample_rate / fps))."""
    return int(num_samples / (sample_rate / fps))


def _emphasised(wav: "np.ndarray | Waveform", lo: int, hi: int, n_fft: int, coef: float) -> np.ndarray:
    """Samples lo..hi-1 of the pre-emphasised, reflect-padded signal (index 0 = first real sample).

    The same float64 operations as slicing np.pad(lfilter([1, -coef], [1], wav), n_fft // 2,
    'reflect') (equal bit for bit on the CPUs we measured; not promised for every build).
    """
    n = len(wav)
    k = np.arange(lo, hi)
    k = np.abs(k)  # reflect at the start: -j -> j
    k = np.where(k >= n, 2 * (n - 1) - k, k)  # reflect at the end
    x = wav[np.concatenate([k, np.maximum(k - 1, 0)])].astype(np.float64)  # one read of the samples used
    current, before = x[: len(k)], x[len(k) :]
    return current + (-coef) * np.where(k > 0, before, 0.0)


@functools.cache
def mel_basis(cfg: AudioConfig) -> np.ndarray:
    """The (num_mels, n_fft // 2 + 1) mel filter bank, built once per configuration (a live stream
    asks for a few mel frames at a time)."""
    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.num_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    basis.flags.writeable = False  # shared by every caller
    return basis


def mel_frames(wav: "np.ndarray | Waveform", first: int, stop: int, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Mel frames first..stop-1 of the whole clip's spectrogram, (stop - first, num_mels) float64.

    Each STFT frame only needs its own 800 samples, so any range is computed with the same
    per-frame arithmetic as the whole-clip spectrogram while touching only those samples (the mel
    matrix product then has another shape, so a BLAS may round a last bit differently; we measured
    no difference).
    """
    pad = cfg.n_fft // 2
    segment = _emphasised(
        wav, first * cfg.hop_size - pad, (stop - 1) * cfg.hop_size + cfg.n_fft - pad, cfg.n_fft, cfg.preemphasis
    )
    spec = np.abs(
        librosa.stft(y=segment, n_fft=cfg.n_fft, hop_length=cfg.hop_size, win_length=cfg.win_size, center=False)
    )
    floor = np.exp(cfg.min_level_db / 20 * np.log(10))
    db = 20 * np.log10(np.maximum(floor, mel_basis(cfg) @ spec)) - cfg.ref_level_db
    scaled = (2 * cfg.max_abs_value) * ((db - cfg.min_level_db) / (-cfg.min_level_db)) - cfg.max_abs_value
    return np.clip(scaled, -cfg.max_abs_value, cfg.max_abs_value).T


def num_mel_frames(num_samples: int, cfg: AudioConfig = DEFAULT) -> int:
    return 1 + num_samples // cfg.hop_size


def melspectrogram(wav: np.ndarray, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Normalised log-mel spectrogram (n_mel_frames, num_mels), float64, values in [-4, 4]."""
    return mel_frames(wav, 0, num_mel_frames(len(wav), cfg), cfg)


def window_start(frame: int, fps: float = 25.0, cfg: AudioConfig = DEFAULT) -> int:
    """First mel frame of video frame `frame`'s window, truncated toward zero (may be negative).

    The window spans `window_frames` mel frames centred on the video frame. At 25 fps this is the
    official int(80 * ((frame - 2) / 25)).
    """
    if fps == 25.0 and cfg.mel_fps == 80.0:
        return int(80.0 * ((frame - 2) / 25.0))
    return math.trunc(cfg.mel_fps * (frame + 0.5) / fps - cfg.window_frames / 2)


def _window_indices(frames: range, num_mel: int, fps: float, cfg: AudioConfig) -> np.ndarray:
    """(len(frames), window_frames) mel-frame indices of each video frame's window, edge-clamped."""
    starts = np.array([window_start(i, fps, cfg) for i in frames], dtype=np.int64)
    return np.clip(starts[:, None] + np.arange(cfg.window_frames)[None, :], 0, num_mel - 1)


def windows_from_mel(mel: np.ndarray, num_frames: int, fps: float = 25.0, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Cut one (1, num_mels, window_frames) window per video frame: -> (num_frames, 1, 80, 16) float32.

    Indices past either end of the spectrogram repeat its first/last frame.
    """
    idx = _window_indices(range(num_frames), len(mel), fps, cfg)
    return np.ascontiguousarray(mel[idx].transpose(0, 2, 1)[:, None].astype(np.float32))


def mel_window_chunks(
    wav: "np.ndarray | Waveform", num_frames: int, fps: float = 25.0, chunk: int = 256, cfg: AudioConfig = DEFAULT
) -> Iterator[np.ndarray]:
    """The windows of `windows_from_mel(melspectrogram(wav), num_frames)`, `chunk` frames at a time.

    Only the spectrogram frames a chunk needs are computed, so memory does not grow with the clip.
    """
    num_mel = num_mel_frames(len(wav), cfg)
    for first in range(0, num_frames, chunk):
        idx = _window_indices(range(first, min(num_frames, first + chunk)), num_mel, fps, cfg)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        mel = mel_frames(wav, lo, hi, cfg)
        yield np.ascontiguousarray(mel[idx - lo].transpose(0, 2, 1)[:, None].astype(np.float32))


def load_for_video(wav_path: str | Path, fps: float = 25.0, cfg: AudioConfig = DEFAULT) -> tuple[Waveform, int]:
    """(16 kHz samples cut to whole video frames, read on demand; frame count T) for a video at `fps`.

    T = int(samples / (16000 / fps)); raises AudioError if the audio is shorter than one frame.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    wav = open_waveform(wav_path, cfg.sample_rate)
    num_frames = frame_count(len(wav), fps, cfg.sample_rate)
    if num_frames == 0:
        duration = len(wav) / cfg.sample_rate
        raise AudioError(f"audio {wav_path} lasts {duration:.3f} s, shorter than one video frame at {fps:g} fps")
    return wav.head(int(num_frames * cfg.sample_rate / fps)), num_frames


def mel_windows(wav_path: str | Path, fps: float = 25.0, cfg: AudioConfig = DEFAULT) -> np.ndarray:
    """Audio file -> (T, 1, 80, 16) float32 mel windows, one per output video frame at `fps`."""
    wav, num_frames = load_for_video(wav_path, fps, cfg)
    return np.concatenate(list(mel_window_chunks(wav, num_frames, fps, cfg=cfg)))
