#!/usr/bin/env python3
"""Audio-to-mouth: Audio2Lip with coefficient, reconstruction and sync losses.

    torchrun --nproc_per_node 2 train/train_audio2mouth.py --data DATASET --run_dir runs/audio2mouth [--resume auto]

Options: `--help`; every field of train/config.py can be given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("audio2mouth", None, __doc__))
