#!/usr/bin/env python3
"""The official script name for the video-driven full model with a predefined emotion (--exp_type,
default contempt): the mouth follows a mouth video, the head a pose video (or stays still). Same
as demo_EDTalk_V.py --exp_type; the weights come from --ckpt_dir/predefined_exp_weights/."""

import sys

from edtalk.checkpoints import FULL
from edtalk.cli import SAMPLE_MOUTH_VIDEO, run_demo

EXAMPLE = (
    "python demo_EDTalk_V_using_predefined_exp_weights.py --source_path photo.jpg "
    "--lip_driving_path talking.mp4 --pose_driving_path head.mp4 --exp_type sad --save_path res/out.mp4"
)
INPUTS = ["lip_driving_path", "soundtrack", "pose_driving_path", "exp_type", "exp_scale"]


def main(argv: list[str] | None = None) -> int:
    defaults = dict(lip_driving_path=str(SAMPLE_MOUTH_VIDEO), exp_type="contempt")
    return run_demo(__doc__, EXAMPLE, argv, FULL, "res/demo_EDTalk_V_using_weights.mp4", INPUTS, **defaults)


if __name__ == "__main__":
    sys.exit(main())
