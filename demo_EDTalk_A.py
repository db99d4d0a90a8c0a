#!/usr/bin/env python3
"""Audio-driven EDTalk (full model): the mouth follows the audio, the head a pose video (or stays
still), and the expression a reference image/video, one of the eight predefined emotions, or the
speech itself (--exp_from_audio, with a trained Audio2Exp.pt)."""

import sys

from edtalk.checkpoints import FULL
from edtalk.cli import run_demo

EXAMPLE = (
    "python demo_EDTalk_A.py --source_path photo.jpg --audio_driving_path speech.wav "
    "--pose_driving_path head.mp4 --exp_type happy --save_path res/out.mp4"
)
INPUTS = ["audio_driving_path", "pose_driving_path", "exp_driving_path", "exp_type", "exp_scale", "exp_from_audio"]
INPUTS += ["pose_from_audio", "pose_temperature", "seed", "pose_style_path"]


def main(argv: list[str] | None = None) -> int:
    return run_demo(__doc__, EXAMPLE, argv, FULL, "res/demo_EDTalk_A.mp4", INPUTS)


if __name__ == "__main__":
    sys.exit(main())
