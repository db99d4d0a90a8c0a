#!/usr/bin/env python3
"""Audio-to-expression: Audio2Exp learns the full generator's expression coefficients and the MEAD emotion.

    torchrun --nproc_per_node 2 train/train_audio2exp.py --data SET --generator EDTalk.pt --run_dir runs/a2e

The first run encodes every frame of the set once with `--generator` (the teacher) and caches the
coefficients beside it (train/teacher.py). Options: `--help`; every field of train/config.py can be
given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("audio2exp", None, __doc__))
