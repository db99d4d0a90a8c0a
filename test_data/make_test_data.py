#!/usr/bin/env python3
"""Regenerate the sample inputs in test_data/ from material installed packages ship.

    python test_data/make_test_data.py

- astronaut.jpg: scikit-image's bundled `astronaut()` photo (NASA, public domain), 512x512,
  an uncropped portrait for the face detection and alignment path.
- speech.wav: English speech synthesised with espeak-ng (Debian package `espeak-ng`), resampled to
  16 kHz mono 16-bit PCM.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile
from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent
SENTENCE = "Hello there. This short clip tests the talking head, one word at a time."


def make_photo() -> None:
    Image.fromarray(data.astronaut()).save(HERE / "astronaut.jpg", quality=88)


def make_speech() -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is needed: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
        wav, sr = soundfile.read(raw, dtype="float32")
    wav = librosa.resample(wav, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    wav = 0.9 * wav / np.abs(wav).max()
    soundfile.write(HERE / "speech.wav", wav, 16000, subtype="PCM_16")


if __name__ == "__main__":
    make_photo()
    make_speech()
