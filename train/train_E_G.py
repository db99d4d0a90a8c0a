#!/usr/bin/env python3
"""Stage 1: encoder/generator reconstruction fine-tuning (L1 + VGG19 perceptual + adversarial).

    torchrun --nproc_per_node 2 train/train_E_G.py --data DATASET --run_dir runs/E_G [--resume auto]

Options: `--help`; every field of train/config.py can be given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("E_G", None, __doc__))
