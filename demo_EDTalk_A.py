#!/usr/bin/env python3
"""Audio-driven EDTalk (full model): the mouth follows the audio, the head a pose video (or stays
still), and the expression a reference image/video or one of the eight predefined emotions."""

import sys

from edtalk.checkpoints import EXPRESSIONS, FULL
from edtalk.cli import parser, render_to_file

EXAMPLE = (
    "python demo_EDTalk_A.py --source_path photo.jpg --audio_driving_path speech.wav "
    "--pose_driving_path head.mp4 --exp_type happy --save_path res/out.mp4"
)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, EXAMPLE, "res/demo_EDTalk_A.mp4")
    p.add_argument("--audio_driving_path", default="test_data/speech.wav", help="speech (any audio format)")
    p.add_argument("--pose_driving_path", help="head-pose video or image (default: the head stays still)")
    p.add_argument("--exp_driving_path", help="expression reference image or video")
    p.add_argument("--exp_type", help=f"predefined emotion instead: {', '.join(EXPRESSIONS)}")
    args = p.parse_args(argv)
    return render_to_file(
        args,
        FULL,
        audio=args.audio_driving_path,
        pose=args.pose_driving_path,
        exp=args.exp_driving_path,
        exp_type=args.exp_type,
    )


if __name__ == "__main__":
    sys.exit(main())
