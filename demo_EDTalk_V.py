#!/usr/bin/env python3
"""Video-driven EDTalk (full model): mouth, head pose and expression each follow their own
driving video (or image); the audio, if given, is the soundtrack."""

import sys

from edtalk.checkpoints import EXPRESSIONS, FULL
from edtalk.cli import parser, render_to_file

EXAMPLE = (
    "python demo_EDTalk_V.py --source_path photo.jpg --lip_driving_path talking.mp4 "
    "--pose_driving_path head.mp4 --exp_driving_path smile.mp4 --save_path res/out.mp4"
)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, EXAMPLE, "res/demo_EDTalk_V.mp4")
    p.add_argument("--lip_driving_path", required=True, help="mouth-driving video (sets the output length)")
    p.add_argument("--audio_driving_path", help="soundtrack (default: the mouth video's own audio, if any)")
    p.add_argument("--pose_driving_path", help="head-pose video or image (default: the head stays still)")
    p.add_argument("--exp_driving_path", help="expression reference image or video")
    p.add_argument("--exp_type", help=f"predefined emotion instead: {', '.join(EXPRESSIONS)}")
    args = p.parse_args(argv)
    return render_to_file(
        args,
        FULL,
        audio=args.audio_driving_path,
        lip=args.lip_driving_path,
        pose=args.pose_driving_path,
        exp=args.exp_driving_path,
        exp_type=args.exp_type,
    )


if __name__ == "__main__":
    sys.exit(main())
