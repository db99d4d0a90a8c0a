#!/usr/bin/env python3
"""The lip-sync expert used by the audio-to-mouth sync loss.

    torchrun --nproc_per_node 2 train/train_syncnet.py --data DATASET --run_dir runs/syncnet [--resume auto]

Options: `--help`; every field of train/config.py can be given as a flag or in `--config file.yaml`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("syncnet", None, __doc__))
