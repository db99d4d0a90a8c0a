"""Training options: one dataclass of common options, one subclass per kind of stage.

Each field is declared once, with its default and its help text (field metadata); the flags of
every train_*.py script, their `--help`, and the keys a `--config file.yaml` may hold are generated
from the stage's options class. Precedence: field default <- the stage's `defaults` <- YAML <- flags.
"""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from .stage import Stage


def option(default, help: str):
    """A dataclass field whose metadata carries the flag's help text."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Options every stage has."""

    data: str = option("", "prepared dataset folder (lmdb/ and lists/), made by data_preprocess/prepare_dataset.py")
    run_dir: str = option("runs/default", "folder for checkpoints, samples, config.yaml, log.txt and stats.jsonl")
    split: str = option("train", "training list in <data>/lists/ (<split>.json)")
    init: str = option("", "checkpoint to start from (weights only), e.g. the previous stage's best.pt")
    resume: str = option("", "'auto' (newest checkpoint in run_dir) or a checkpoint path: weights, optimisers, step")
    steps: int = option(800000, "total optimisation steps")
    batch_size: int = option(4, "samples per process and step")
    lr: float = option(0.002, "base learning rate (G gets lr x 4/5, D lr x 16/17, as the official trainers)")
    workers: int = option(4, "DataLoader worker processes per training process")
    seed: int = option(0, "seed of the weights' initialisation and of every sample's random choices")
    log_every: int = option(10, "log the losses every N steps")
    sample_every: int = option(1000, "save a sample grid (samples/<step>.png) every N steps")
    save_every: int = option(2000, "save a checkpoint every N steps (and at the last step)")
    keep_checkpoints: int = option(5, "periodic checkpoints kept (older ones are deleted; best.pt is kept apart)")
    val_split: str = option("val", "validation list in <data>/lists/ ('' turns validation off)")
    val_every: int = option(1000, "validate every N steps (and at the last step); the best is kept as best.pt")
    val_samples: int = option(64, "validation clips (the first N of the list, fixed frames)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    amp: bool = option(False, "bf16/fp16 autocast on CUDA with a gradient scaler")
    weights: dict = option({}, "loss term -> weight as JSON, e.g. '{\"vgg\": 2}' (the stage's defaults otherwise)")


@dataclass
class ImageConfig(TrainConfig):
    """Stages whose losses compare images (L1 and the VGG19 perceptual loss)."""

    vgg_weights: str = option("", "torchvision vgg19 state dict for the perceptual loss (random features if empty)")
    channel_divisor: int = option(
        1,
        "divide every generator and discriminator width by N (1: the official networks; 2, 4, 8: smaller, faster)",
    )


@dataclass
class FineTuneConfig(ImageConfig):
    only_fine_tune_dec: bool = option(False, "optimise the decoder only (the encoder and motion heads stay fixed)")


@dataclass
class TeacherConfig(TrainConfig):
    """Stages that learn from a frozen, trained generator."""

    generator: str = option("", "the trained generator checkpoint: the frozen teacher (required)")


@dataclass
class Audio2MouthConfig(TeacherConfig, ImageConfig):
    syncnet: str = option("", "lip-sync expert for the sync loss: a train_syncnet.py checkpoint or lipsync_expert.pth")
    wav2lip: str = option("", "Wav2Lip generator checkpoint (wav2lip.pth) whose audio encoder starts Audio2Lip's")
    train_audio_encoder: bool = option(False, "also train the audio encoder (frozen by default, as the official)")


@dataclass
class MotionConfig(TeacherConfig):
    window: int = option(50, "consecutive frames per training sample (50 = 2 s at 25 fps)")


def _flag_type(f: dataclasses.Field):
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}.get(f.type, str)
    return json.loads if f.name == "weights" else kind


def build_parser(options: type[TrainConfig], defaults: dict, description: str) -> argparse.ArgumentParser:
    """One flag per field of `options`, its help from the field's metadata and its default shown."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file with any of the options below (flags override it)")
    parser.add_argument("--dry_run", action="store_true", help="print the resolved options and exit")
    for f in dataclasses.fields(options):
        default = defaults.get(
            f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        )
        text = f"{f.metadata['help']} (default: {json.dumps(default)})"
        if f.type in (bool, "bool"):
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(f"--{f.name}", type=_flag_type(f), default=None, help=text)
    return parser


def check_weights(weights: dict, stage: "Stage") -> None:
    """--weights may only name the stage's loss terms (one-line SystemExit otherwise)."""
    unknown = sorted(set(weights) - set(stage.weights))
    if unknown:
        raise SystemExit(
            f"--weights: {', '.join(unknown)} is not a loss term of this stage (its terms: {', '.join(stage.weights)})"
        )


def parse_config(argv: list[str] | None, stage: "Stage", description: str) -> TrainConfig:
    """The stage's options from its defaults, a --config YAML and flags (unknown keys end the run)."""
    options = stage.config
    args = build_parser(options, stage.defaults, description).parse_args(argv)
    values = dict(stage.defaults)
    if args.config:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        unknown = set(loaded) - {f.name for f in dataclasses.fields(options)}
        if unknown:
            raise SystemExit(f"unknown config keys in {args.config}: {', '.join(sorted(unknown))}")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if v is not None and k not in ("config", "dry_run")})
    config = options(**values)
    if not config.data:
        raise SystemExit("--data is required: a folder made by data_preprocess/prepare_dataset.py")
    check_weights(config.weights, stage)
    if args.dry_run:
        print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
        raise SystemExit(0)
    return config


def changed_options(old: dict, new: dict) -> list[str]:
    """'name: old -> new' for every option whose value differs between two configs (as dicts)."""
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
