#!/usr/bin/env python3
"""Stage 3: expression decoupling by self-reconstruction complementary learning (expression bank and EEMs only).

    torchrun --nproc_per_node 2 train/train_Expression_decouple.py --data DATASET --run_dir runs/exp [--resume auto]

Options: `--help`; every field of train/config.py can be given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("Expression_decouple", None, __doc__))
