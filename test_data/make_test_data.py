#!/usr/bin/env python3
"""Regenerate the sample inputs in test_data/ from material installed packages ship.

    python test_data/make_test_data.py

- astronaut.jpg: scikit-image's bundled `astronaut()` photo (NASA, public domain), 512x512,
  an uncropped portrait for the face detection and alignment path.
- speech.wav: English speech synthesised with espeak-ng (Debian package `espeak-ng`), resampled to
  16 kHz mono 16-bit PCM.
- mouth_source.mp4: the sample mouth-driving video (the default `--lip_driving_path` of the
  video-driven demos and the default source of `demo_change_a_video_lip.py`): the first 2 s
  (50 frames, 25 fps, 256x256) of the repository's own aligned talking-head clip
  `tests/fixtures/media/pose_source1.mp4`, re-encoded with H.264, with the first words of
  speech.wav ("Hello there.", 1 s, faded out and padded with silence to 2 s) as its AAC soundtrack.
  The soundtrack is ours, not the speaker's own voice, so it does not match the mouth exactly.

Only `mouth_source.mp4` can be remade without espeak-ng: `python test_data/make_test_data.py mouth`.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio_ffmpeg
import librosa
import numpy as np
import soundfile
from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent
TALKING_HEAD = HERE.parent / "tests" / "fixtures" / "media" / "pose_source1.mp4"
MOUTH_SECONDS, WORDS_SECONDS = 2.0, 1.0  # clip length; "Hello there." ends before 1 s in speech.wav
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


def make_mouth_video() -> None:
    audio = f"[1:a]atrim=0:{WORDS_SECONDS},afade=t=out:st={WORDS_SECONDS - 0.1}:d=0.1,apad=whole_dur={MOUTH_SECONDS}[a]"
    # fmt: off
    subprocess.run([
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(TALKING_HEAD), "-i", str(HERE / "speech.wav"),
        "-filter_complex", audio, "-map", "0:v", "-map", "[a]", "-t", str(MOUTH_SECONDS),
        "-c:v", "libx264", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "1",
        "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", str(HERE / "mouth_source.mp4"),
    ], check=True)
    # fmt: on


if __name__ == "__main__":
    if sys.argv[1:] != ["mouth"]:
        make_photo()
        make_speech()
    make_mouth_video()
