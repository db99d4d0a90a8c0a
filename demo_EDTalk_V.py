#!/usr/bin/env python3
"""Video-driven EDTalk (full model): mouth, head pose and expression each follow their own
driving video (or image); the audio, if given, is the soundtrack."""

import sys

from edtalk.checkpoints import FULL
from edtalk.cli import SAMPLE_MOUTH_VIDEO, run_demo

EXAMPLE = (
    "python demo_EDTalk_V.py --source_path photo.jpg --lip_driving_path talking.mp4 "
    "--pose_driving_path head.mp4 --exp_driving_path smile.mp4 --save_path res/out.mp4"
)
INPUTS = ["lip_driving_path", "soundtrack", "pose_driving_path", "exp_driving_path", "exp_type", "exp_scale"]


def main(argv: list[str] | None = None) -> int:
    sample = str(SAMPLE_MOUTH_VIDEO)
    return run_demo(__doc__, EXAMPLE, argv, FULL, "res/demo_EDTalk_V.mp4", INPUTS, lip_driving_path=sample)


if __name__ == "__main__":
    sys.exit(main())
