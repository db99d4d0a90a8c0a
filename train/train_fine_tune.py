#!/usr/bin/env python3
"""Per-person fine-tuning of the lip-pose model on one video (--only_fine_tune_dec recommended).

    torchrun --nproc_per_node 2 train/train_fine_tune.py --data DATASET --run_dir runs/fine_tune [--resume auto]

Options: `--help`; every field of train/config.py can be given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("fine_tune", None, __doc__))
