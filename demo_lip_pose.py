#!/usr/bin/env python3
"""Lip-pose model: the mouth follows the audio (or a mouth video), the head a pose video or stays
still; the source keeps its own expression. A video source is re-dubbed frame by frame."""

import sys

from edtalk.checkpoints import LIP_POSE
from edtalk.cli import parser, render_to_file

EXAMPLE = (
    "python demo_lip_pose.py --source_path photo.jpg --audio_driving_path speech.wav "
    "--pose_driving_path head.mp4 --save_path res/out.mp4"
)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, EXAMPLE, "res/demo_lip_pose.mp4")
    p.add_argument("--audio_driving_path", default="test_data/speech.wav", help="speech (any audio format)")
    p.add_argument("--pose_driving_path", help="head-pose video or image (default: the head stays still)")
    p.add_argument("--fix_pose", action="store_true", help="keep the source's head pose (ignore --pose_driving_path)")
    p.add_argument("--lip_driving_path", help="mouth-driving video instead of the audio (audio is then the soundtrack)")
    args = p.parse_args(argv)
    pose = None if args.fix_pose else args.pose_driving_path
    return render_to_file(args, LIP_POSE, audio=args.audio_driving_path, lip=args.lip_driving_path, pose=pose)


if __name__ == "__main__":
    sys.exit(main())
