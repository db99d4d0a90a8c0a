#!/usr/bin/env python3
"""Audio-to-pose: the Audio2Pose flow learns the generator's head-pose coefficients by maximum likelihood.

    torchrun --nproc_per_node 2 train/train_audio2pose.py --data SET --generator EDTalk_lip_pose.pt --run_dir runs/a2p

The first run encodes every frame of the set once with `--generator` (the teacher) and caches the
coefficients beside it (train/teacher.py; shared with train_audio2exp.py). The checkpoint's
'audio2pose' entry is what `ckpts/Audio2Pose.pt` holds. Options: `--help`; every field of
train/config.py can be given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("audio2pose", None, __doc__))
