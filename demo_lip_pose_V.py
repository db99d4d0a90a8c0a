#!/usr/bin/env python3
"""The official script name for the lip-pose model driven by a mouth video: the mouth follows
--lip_driving_path (the output has its length), the head a pose video or stays still; the source
keeps its own expression. Same as demo_lip_pose.py --lip_driving_path."""

import sys

from edtalk.checkpoints import LIP_POSE
from edtalk.cli import SAMPLE_MOUTH_VIDEO, run_demo

EXAMPLE = (
    "python demo_lip_pose_V.py --source_path photo.jpg --lip_driving_path talking.mp4 "
    "--pose_driving_path head.mp4 --save_path res/out.mp4"
)
INPUTS = ["lip_driving_path", "soundtrack", "pose_driving_path", "fix_pose"]


def main(argv: list[str] | None = None) -> int:
    sample = str(SAMPLE_MOUTH_VIDEO)
    return run_demo(__doc__, EXAMPLE, argv, LIP_POSE, "res/demo_EDTalk_lip_pose_V.mp4", INPUTS, lip_driving_path=sample)


if __name__ == "__main__":
    sys.exit(main())
