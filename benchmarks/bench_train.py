#!/usr/bin/env python3
"""Training speed and memory per stage on the current device.

    python benchmarks/bench_train.py [--device auto] [--batch_size 2] [--steps 3] [--stages E_G syncnet]
    python benchmarks/bench_train.py --data my_prepared_set --split train --json res/train.json

For each stage it runs the real training step (train/loop.py Trainer.step: the stage's losses, backward,
optimiser, and the discriminator step where the stage has one) and reports seconds per step,
per-sample seconds, GFLOP per step (forward + backward, counted by torch's FlopCounterMode) and
peak memory (resident set of the stage's own process; on CUDA also the peak of allocated GPU
memory). Each stage runs in a fresh process so the peaks do not mix. Batches are loaded before
the clock starts (data loading is measured by bench_data.py). Without `--data`, a 20-second
training set is pre-processed from the reference talking clip. Weights are random (speed does not
depend on the values); the perceptual loss uses a random VGG19 of the real shape.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_data import DEFAULT_VIDEO, make_raw_video  # noqa: E402
from edtalk.device import resolve_device, synchronize  # noqa: E402
from networks import EDTALK, LIP_POSE, Generator  # noqa: E402
from networks.discriminator import Discriminator  # noqa: E402
from networks.lipsync_expert import SyncNet  # noqa: E402
from train import teacher  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.loop import Trainer  # noqa: E402
from train.motion_stages import MOTION_STAGES  # noqa: E402
from train.sampling import endless_batches, to_device  # noqa: E402
from train.stages import STAGES  # noqa: E402


def prepare_data(folder: Path, seconds: float) -> Path:
    """A small training set from the reference clip, with an `all` list of every clip."""
    from data_preprocess.lmdb_store import LmdbReader
    from data_preprocess.prepare_dataset import PrepareConfig, prepare

    raw, out = folder / "raw", folder / "set"
    raw.mkdir()
    make_raw_video(DEFAULT_VIDEO, ROOT / "test_data" / "speech.wav", seconds, raw / "speaker.mp4")
    prepare(raw, out, PrepareConfig(test_fraction=0.0), progress=False)
    (out / "lists" / "all.json").write_text(json.dumps(LmdbReader(out / "lmdb").names()))
    return out


def seed_checkpoints(folder: Path, only_fine_tune_dec: bool) -> dict[str, dict]:
    """Random lip-pose generator (with its discriminator, which the audio stage's GAN term uses) and
    SyncNet checkpoints for the stages that start from them."""
    lip_pose, syncnet = folder / "lip_pose.pt", folder / "syncnet.pt"
    torch.save({"gen": Generator(LIP_POSE).state_dict(), "dis": Discriminator().state_dict()}, lip_pose)
    torch.save({"syncnet": SyncNet().state_dict(), "step": 0}, syncnet)
    return {
        "Expression_decouple": {"init": str(lip_pose)},
        "audio2mouth": {"generator": str(lip_pose), "syncnet": str(syncnet)},
        "fine_tune": {"init": str(lip_pose), "only_fine_tune_dec": only_fine_tune_dec},
    }


def seed_teacher(folder: Path, data: Path) -> tuple[dict[str, dict], Path]:
    """A random full generator for the audio-to-motion stages and, in place of its encoder pass over
    the set (minutes on a CPU; not part of a step), random teacher coefficients cached for it in
    `data` (the caller removes that file). Returns the stages' extra settings and the cache path."""
    from data_preprocess.lmdb_store import LmdbReader

    full = folder / "full.pt"
    torch.save({"gen": Generator(EDTALK).state_dict()}, full)
    reader = LmdbReader(data / "lmdb")
    names = reader.names()
    dims = {"lip": EDTALK.lip_dim, "pose": EDTALK.pose_dim, "exp": EDTALK.exp_dim}
    coefs = {p: [torch.randn(reader.length(n), d).numpy() for n in names] for p, d in dims.items()}
    cache = teacher.cache_path(data, full)
    teacher.write(cache, names, [reader.stamp(n) for n in names], coefs)
    return {name: {"generator": str(full)} for name in MOTION_STAGES}, cache


def measure(stage_name: str, cfg: TrainConfig, steps: int) -> dict:
    """Seconds per step (mean of `steps` after one warm-up step), GFLOP per step and peak memory."""
    stage = STAGES[stage_name]()
    device = torch.device(cfg.device)
    trainer = Trainer.build(stage, cfg, device)
    source = endless_batches(stage.dataset(cfg, cfg.split), cfg, 0, rank=0, world=1)
    batches = [to_device(next(source), device) for _ in range(steps + 1)]
    with FlopCounterMode(display=False) as flops:
        trainer.step(batches[0])
    synchronize(device)
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer.step(batch)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    result = {
        "stage": stage_name,
        "device": str(device),
        "batch_size": cfg.batch_size,
        "seconds_per_step": seconds,
        "seconds_per_sample": seconds / cfg.batch_size,
        "gflop_per_step": flops.get_total_flops() / 1e9,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def run_stage(args, stage_name: str, data: Path, extra: dict) -> dict:
    """One stage in a fresh process (so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--_one_stage", stage_name, "--data", str(data), "--split", args.split]
    cmd += ["--device", args.device, "--batch_size", str(args.batch_size), "--steps", str(args.steps)]
    cmd += ["--_extra", json.dumps(extra)] + (["--amp"] if args.amp else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage_name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--batch_size", type=int, default=2, help="per step (one process)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per stage, after one warm-up step")
    parser.add_argument("--amp", action="store_true", help="autocast with a gradient scaler (CUDA)")
    parser.add_argument("--only_fine_tune_dec", action="store_true", help="fine_tune stage: decoder only")
    parser.add_argument("--data", type=Path, help="a prepared dataset (default: 20 s made from the reference clip)")
    parser.add_argument("--split", default="all", help="list in <data>/lists/")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--_one_stage", help=argparse.SUPPRESS)
    parser.add_argument("--_extra", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    args.device = str(resolve_device(args.device))
    if args._one_stage:
        cfg = TrainConfig(
            data=str(args.data),
            split=args.split,
            batch_size=args.batch_size,
            workers=0,
            device=args.device,
            amp=args.amp,
            **json.loads(args._extra),
        )
        print(json.dumps(measure(args._one_stage, cfg, args.steps)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or prepare_data(Path(tmp), 20.0)
        extras = seed_checkpoints(Path(tmp), args.only_fine_tune_dec)
        motion_extras, cache = seed_teacher(Path(tmp), data)
        extras |= motion_extras
        print(f"device {args.device}, batch {args.batch_size}, torch {torch.__version__}")
        print(f"{'stage':<22} {'s/step':>8} {'s/sample':>9} {'GFLOP/step':>11} {'peak RSS MB':>12} {'peak GPU MB':>12}")
        results = []
        try:
            for name in args.stages:
                r = run_stage(args, name, data, extras.get(name, {}))
                results.append(r)
                gpu = f"{r['peak_cuda_mb']:.0f}" if "peak_cuda_mb" in r else "-"
                print(
                    f"{name:<22} {r['seconds_per_step']:>8.2f} {r['seconds_per_sample']:>9.2f} "
                    f"{r['gflop_per_step']:>11.0f} {r['peak_rss_mb']:>12.0f} {gpu:>12}",
                    flush=True,
                )
        finally:
            cache.unlink()  # the random teacher's coefficients must not stay in the set
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": args.device, "stages": results}, indent=2))


if __name__ == "__main__":
    main()
