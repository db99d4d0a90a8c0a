#!/usr/bin/env python3
"""The official script name for the audio-driven full model with a predefined emotion (--exp_type,
default angry): the mouth follows the audio, the head a pose video (or stays still). Same as
demo_EDTalk_A.py --exp_type; the weights come from --ckpt_dir/predefined_exp_weights/."""

import sys

from edtalk.checkpoints import FULL
from edtalk.cli import run_demo

EXAMPLE = (
    "python demo_EDTalk_A_using_predefined_exp_weights.py --source_path photo.jpg "
    "--audio_driving_path speech.wav --pose_driving_path head.mp4 --exp_type happy --save_path res/out.mp4"
)
INPUTS = ["audio_driving_path", "pose_driving_path", "exp_type", "exp_scale"]


def main(argv: list[str] | None = None) -> int:
    save = "res/demo_EDTalk_A_using_weights.mp4"
    return run_demo(__doc__, EXAMPLE, argv, FULL, save, INPUTS, exp_type="angry")


if __name__ == "__main__":
    sys.exit(main())
