"""Speech as the HiSTalk encoders take it, shared by training and inference.

Any audio file is read at 16 kHz mono (edtalk.audio). The mel encoder takes edtalk.audio's 80-bin
log-mel frames (80 per second); wav2vec 2.0 takes the samples. A clip of n samples has
floor(n / 16000 * fps) motion frames.
"""

from pathlib import Path

import numpy as np

from edtalk.audio import DEFAULT, load_wav, melspectrogram

SAMPLE_RATE = DEFAULT.sample_rate
MEL_FPS = DEFAULT.mel_fps


def load_speech(path: str | Path) -> np.ndarray:
    """16 kHz mono float32 samples of any audio file (AudioError, one line, when unreadable)."""
    return load_wav(path, SAMPLE_RATE)


def motion_frames(num_samples: int, fps: float) -> int:
    return int(num_samples / SAMPLE_RATE * fps)


def encoder_input(wav: np.ndarray, kind: str) -> np.ndarray:
    """The whole clip's encoder input: (M, 80) float32 mel frames ('mel') or the samples ('wav2vec2')."""
    return melspectrogram(wav).astype(np.float32) if kind == "mel" else wav.astype(np.float32)


def window(features: np.ndarray, kind: str, start: int, frames: int, fps: float) -> np.ndarray:
    """The part of `encoder_input` under motion frames start..start+frames (zero-padded at the end)."""
    rate = MEL_FPS if kind == "mel" else SAMPLE_RATE
    lo, n = round(start * rate / fps), round(frames * rate / fps)
    part = features[lo : lo + n]
    if len(part) < n:
        part = np.concatenate([part, np.zeros((n - len(part), *features.shape[1:]), dtype=features.dtype)])
    return part
