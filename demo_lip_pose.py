#!/usr/bin/env python3
"""Lip-pose model: the mouth follows the audio (or a mouth video), the head a pose video or stays
still; the source keeps its own expression. A video source is re-dubbed frame by frame."""

import sys

from edtalk.checkpoints import LIP_POSE
from edtalk.cli import run_demo

EXAMPLE = (
    "python demo_lip_pose.py --source_path photo.jpg --audio_driving_path speech.wav "
    "--pose_driving_path head.mp4 --save_path res/out.mp4"
)
INPUTS = ["audio_driving_path", "pose_driving_path", "fix_pose", "lip_driving_path"]
INPUTS += ["pose_from_audio", "pose_temperature", "seed", "pose_style_path"]


def main(argv: list[str] | None = None) -> int:
    return run_demo(__doc__, EXAMPLE, argv, LIP_POSE, "res/demo_lip_pose.mp4", INPUTS)


if __name__ == "__main__":
    sys.exit(main())
