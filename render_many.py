#!/usr/bin/env python3
"""Render every job of a job list (JSON Lines: one job per line, `model` plus the demo flags as keys
without dashes) with the models loaded once. With --processes N (or under torchrun) each process
renders its share (one process per GPU, or N CPU processes) and rank 0 writes one report. Outputs
that exist are skipped, so running the same command again after a crash continues. Exit code 0 only
if every job succeeded, else 1 (a failed job: its line is named)."""

import argparse
import logging
import os
import sys

import demo_EDTalk_A
import demo_EDTalk_V
import demo_lip_pose
from edtalk.checkpoints import FULL, LIP_POSE
from edtalk.cli import HelpFormatter
from edtalk.jobs import RUN_FIELDS, render_many
from edtalk.launch import launch
from edtalk.options import PipelineOptions, add_flags

EXAMPLE = """\
  python render_many.py --jobs jobs.jsonl --ckpt_dir ckpts --report res/report.json
  python render_many.py --processes 8 --jobs jobs.jsonl --report res/report.json   # one process per GPU
  torchrun --nnodes 2 --nproc_per_node 8 ... render_many.py --jobs jobs.jsonl      # several machines

jobs.jsonl (relative paths are from the current folder; missing output folders are made):
  {"model": "full", "source_path": "a.jpg", "audio_driving_path": "a.wav", "exp_type": "sad", "save_path": "res/a.mp4"}
  {"model": "lip_pose", "source_path": "b.jpg", "audio_driving_path": "b.wav", "pose_driving_path": "head.npz",
   "no_crop": true, "save_path": "res/b.mp4"}    <- on one line in the file

Under torchrun a run with a failed job ends with exit code 1 as well, and torchrun adds its own failure
report; --processes starts the processes of one machine without it."""

# The input flags a job may set, per model: those of the demos of that model.
INPUTS = {
    FULL: [name for name in dict.fromkeys(demo_EDTalk_A.INPUTS + demo_EDTalk_V.INPUTS) if name != "soundtrack"],
    LIP_POSE: demo_lip_pose.INPUTS,
}
RUN_HELP = dict(
    device="auto, cpu, cuda or mps; with several processes on GPUs: cuda:LOCAL_RANK",
    progress="log only failed jobs and errors",
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, epilog=f"example:\n{EXAMPLE}", formatter_class=HelpFormatter)
    p.add_argument("--jobs", required=True, help="job list: one JSON object per line")
    add_flags(p, PipelineOptions, list(RUN_FIELDS), **RUN_HELP)
    p.add_argument("--report", help="write a JSON report here: totals and, per job, status, error, frames, seconds")
    p.add_argument("--processes", type=int, default=1, help="processes on this machine (e.g. one per GPU)")
    args = p.parse_args(argv)
    if args.processes < 1:
        p.error(f"--processes must be at least 1, got {args.processes}")
    if args.processes > 1 and "RANK" not in os.environ:  # the processes started get RANK and run the jobs
        return launch(__file__, argv, args.processes)
    logging.basicConfig(format="%(message)s", level=logging.WARNING if args.quiet else logging.INFO)
    return render_many(args.jobs, INPUTS, args.ckpt_dir, args.device, args.report)


if __name__ == "__main__":
    sys.exit(main())
