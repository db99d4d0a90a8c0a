#!/usr/bin/env python3
"""The official script name for re-dubbing a video (lip-pose model): each frame of --source_path
(a video, played back and forth if shorter than the audio) keeps its head pose and expression,
and its mouth follows the audio. Like the official script it writes the 256x256 face crops; add
--paste_back for the full original frames. Same as demo_lip_pose.py with a video source."""

import sys

from edtalk.checkpoints import LIP_POSE
from edtalk.cli import SAMPLE_MOUTH_VIDEO, run_demo

EXAMPLE = (
    "python demo_change_a_video_lip.py --source_path interview.mp4 --audio_driving_path new_speech.wav "
    "--paste_back --save_path res/redub.mp4"
)
INPUTS = ["audio_driving_path"]


def main(argv: list[str] | None = None) -> int:
    sample = str(SAMPLE_MOUTH_VIDEO)
    return run_demo(__doc__, EXAMPLE, argv, LIP_POSE, "res/demo_change_a_video_lip.mp4", INPUTS, source_path=sample)


if __name__ == "__main__":
    sys.exit(main())
