#!/usr/bin/env python3
"""HiSTalk: speech -> animated 3D face mesh, trained on a FaceFormer-layout set (VOCASET, BIWI, custom).

    python train/train_histalk.py --data SET --dataset biwi --run_dir RUN --audio_encoder mel
    torchrun --nproc_per_node 2 train/train_histalk.py --data SET --dataset vocaset --run_dir RUN \\
        --audio_encoder wav2vec2 --wav2vec2_path wav2vec2-base-960h/

Make SET with data_preprocess/prepare_mesh_data.py. Validation LVE every --val_every steps keeps
RUN/checkpoints/best.pt, which demo_HiSTalk.py reads. Options: --help; any of them in --config file.yaml.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edtalk.errors import EDTalkError  # noqa: E402
from train.config import parse_config  # noqa: E402
from train.histalk_stage import HiSTalkStage  # noqa: E402
from train.loop import train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    stage = HiSTalkStage()
    cfg = parse_config(argv, stage, __doc__)
    try:
        train(stage, cfg)
    except EDTalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
