"""Training configuration: one dataclass of defaults, per-stage overrides, YAML file and flags on top."""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    data: str = ""  # prepared dataset folder (lmdb/ + lists/), see data_preprocess/
    run_dir: str = "runs/default"  # checkpoints, samples, config and logs go here
    split: str = "train"  # list in <data>/lists/
    init: str = ""  # checkpoint to start from (weights only), e.g. the previous stage's
    generator: str = ""  # audio stages: the trained generator (teacher; audio-to-mouth also renders with it)
    resume: str = ""  # 'auto' (latest in run_dir/checkpoints) or a checkpoint path: weights, optimisers, step
    steps: int = 800000  # total optimisation steps
    batch_size: int = 4  # per process
    lr: float = 0.002  # base learning rate (G gets lr * 4/5, D lr * 16/17, as the official trainers)
    workers: int = 4  # DataLoader workers per process
    seed: int = 0
    log_every: int = 10
    sample_every: int = 1000
    save_every: int = 2000
    keep_checkpoints: int = 5  # older periodic checkpoints are deleted
    val_split: str = "test"  # list in <data>/lists/ for validation ('' turns validation off)
    val_every: int = 1000  # validate every N steps (and at the last step); the best checkpoint is kept as best.pt
    val_samples: int = 64  # validation clips (the first N of the list, fixed frames)
    device: str = "auto"
    amp: bool = False  # bf16/fp16 autocast on CUDA with a gradient scaler
    vgg_weights: str = ""  # torchvision vgg19 state dict for the perceptual loss (random weights if empty)
    syncnet: str = ""  # audio-to-mouth sync loss: train_syncnet.py checkpoint or Wav2Lip's lipsync_expert.pth
    only_fine_tune_dec: bool = False  # fine-tuning: optimise the decoder only
    wav2lip: str = ""  # audio-to-mouth: Wav2Lip generator checkpoint (wav2lip.pth) for the audio encoder's init
    train_audio_encoder: bool = False  # audio-to-mouth: also train the audio encoder (frozen by default, as official)
    window: int = 50  # audio-to-motion stages: consecutive frames per training sample (50 = 2 s)
    weights: dict = field(default_factory=dict)  # loss name -> weight (stage defaults otherwise)


def parse_config(argv: list[str] | None, stage_defaults: dict, description: str) -> TrainConfig:
    """Defaults <- stage defaults <- --config YAML <- --key value flags (unknown keys raise)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file with any of the fields below")
    parser.add_argument("--dry_run", action="store_true", help="print the resolved config and exit")
    for f in dataclasses.fields(TrainConfig):
        if f.type in (bool, "bool"):
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None)
        elif f.name == "weights":
            parser.add_argument("--weights", type=json.loads, default=None, help='JSON, e.g. {"vgg": 1, "l1": 1}')
        else:
            parser.add_argument(f"--{f.name}", type=type(f.default), default=None)
    args = parser.parse_args(argv)
    values = dict(stage_defaults)
    if args.config:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        unknown = set(loaded) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise SystemExit(f"unknown config keys in {args.config}: {', '.join(sorted(unknown))}")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "dry_run")})
    config = TrainConfig(**values)
    if not config.data:
        raise SystemExit("--data is required: a folder made by data_preprocess/prepare_dataset.py")
    if args.dry_run:
        print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
        raise SystemExit(0)
    return config
