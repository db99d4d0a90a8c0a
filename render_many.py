#!/usr/bin/env python3
"""Render every job of a job list (JSON Lines: one job per line, `model` plus the demo flags as keys
without dashes) with the models loaded once. Under torchrun each process renders its share (one
process per GPU, or N CPU processes) and rank 0 writes one report. Outputs that exist are skipped,
so running the same command again after a crash continues. Exit code 0 only if every job succeeded."""

import argparse
import logging
import sys

import demo_EDTalk_A
import demo_EDTalk_V
import demo_lip_pose
from edtalk.checkpoints import DEFAULT_CKPT_DIR, FULL, LIP_POSE
from edtalk.cli import HelpFormatter
from edtalk.jobs import render_many

EXAMPLE = """\
  python render_many.py --jobs jobs.jsonl --ckpt_dir ckpts --report res/report.json
  torchrun --nproc_per_node 8 render_many.py --jobs jobs.jsonl --report res/report.json   # one process per GPU

jobs.jsonl (relative paths are from the current folder; missing output folders are made):
  {"model": "full", "source_path": "a.jpg", "audio_driving_path": "a.wav", "exp_type": "sad", "save_path": "res/a.mp4"}
  {"model": "lip_pose", "source_path": "b.jpg", "audio_driving_path": "b.wav", "pose_driving_path": "head.npz",
   "no_crop": true, "save_path": "res/b.mp4"}    <- on one line in the file"""

# The input flags a job may set, per model: those of the demos of that model.
INPUTS = {
    FULL: [name for name in dict.fromkeys(demo_EDTalk_A.INPUTS + demo_EDTalk_V.INPUTS) if name != "soundtrack"],
    LIP_POSE: demo_lip_pose.INPUTS,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, epilog=f"example:\n{EXAMPLE}", formatter_class=HelpFormatter)
    p.add_argument("--jobs", required=True, help="job list: one JSON object per line")
    p.add_argument("--ckpt_dir", default=str(DEFAULT_CKPT_DIR), help="checkpoint folder (see ckpts/README.md)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps; under torchrun on GPUs: cuda:LOCAL_RANK")
    p.add_argument("--report", help="write a JSON report here: totals and, per job, status, error, frames, seconds")
    p.add_argument("--quiet", action="store_true", help="log only failed jobs and errors")
    args = p.parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.WARNING if args.quiet else logging.INFO)
    return render_many(args.jobs, INPUTS, args.ckpt_dir, args.device, args.report)


if __name__ == "__main__":
    sys.exit(main())
