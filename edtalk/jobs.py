"""Rendering many clips from a job list in one process, or in one process per GPU (edtalk/launch.py
or torchrun).

A job list is a JSON Lines file: one JSON object per line, with `model` ('full' or 'lip_pose')
and the demo flags as keys without dashes (which keys a model takes, and their types, come from the
options schema, edtalk/options.py: see job_keys),

    {"model": "full", "source_path": "a.jpg", "audio_driving_path": "a.wav", "save_path": "res/a.mp4"}
    {"model": "lip_pose", "source_path": "b.jpg", "pose_driving_path": "head.npz", "save_path": "res/b.mp4"}

Every process loads each pipeline once (one per distinct setting: model, cropping, precision...,
made on first use) and renders its share of the jobs: job i goes to rank i % world_size. A job
whose output exists is skipped, so a run started again after a crash continues where it stopped;
a failing job is recorded with its one-line error and the others still render. At the end the
ranks gather their results (over gloo: only this small report crosses processes) and rank 0
writes one report.
"""

import argparse
import dataclasses
import datetime
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .cli import FIX_POSE, offered_fields, parser, pipeline_options, render_file
from .device import resolve_device
from .errors import EDTalkError
from .files import write_atomically
from .options import PipelineOptions, RenderOptions, flag_names
from .pipeline import TalkingHeadPipeline
from .signals import Interrupted, stop_on_signals
from .video_io import check_save_path

log = logging.getLogger(__name__)

RUN_FIELDS = ("ckpt_dir", "device", "progress")  # options set for the whole run (render_many.py's flags)
RANK_TIMEOUT = datetime.timedelta(days=7)  # a rank that finishes early waits this long for the others
KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


class JobError(EDTalkError):
    """A job list that cannot be read, or a job with an unknown key or a value of the wrong type."""


@dataclass
class Job:
    """One line of a job list: its number (from 1), the JSON object, the line of the first job
    with the same save_path (its own number unless two jobs would write one file), the list's path."""

    line: int
    spec: dict
    first_writer: int
    file: str = "the job list"


@dataclass
class JobResult:
    """What became of a job: status 'done', 'skipped' (its output existed) or 'failed' (with the
    one-line error); frames rendered and seconds spent; the rank that ran it."""

    line: int
    save_path: str | None
    status: str
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    rank: int = 0


def read_jobs(path: str | Path) -> list[Job]:
    """Parse a job list; JobError naming the file and line for a line that is not a JSON object.
    Blank lines are ignored."""
    path = Path(path)
    if not path.is_file():
        raise JobError(f"job list not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"cannot read the job list {path}: {exc}") from None
    jobs, writers = [], {}
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobError(f"{path} line {number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(spec, dict):
            raise JobError(f"{path} line {number}: a job is a JSON object {{...}}, got {json.dumps(spec)[:80]}")
        save_path = spec.get("save_path")
        first = writers.setdefault(os.path.abspath(save_path), number) if isinstance(save_path, str) else number
        jobs.append(Job(number, spec, first, str(path)))
    if not jobs:
        raise JobError(f"{path} holds no jobs")
    return jobs


def job_keys(inputs: list[str]) -> dict[str, type]:
    """{job key: the JSON type of its value} for a model whose demos take the input flags `inputs`:
    the flags of the options (edtalk/options.py) those demos offer, less the run's, plus save_path
    (and fix_pose where a demo has it)."""
    fields = offered_fields(inputs) - set(RUN_FIELDS)
    keys = {"save_path": str, **({FIX_POSE: bool} if FIX_POSE in inputs else {})}
    for options in (PipelineOptions, RenderOptions):
        for f in dataclasses.fields(options):
            if f.name in fields and f.metadata.get("flag"):
                settings = f.metadata["argparse"]
                flag = settings.get("action") in ("store_true", argparse.BooleanOptionalAction)
                keys[f.metadata["flag"]] = bool if flag else settings.get("type", str)
    return keys


def check_value(key: str, value, kind: type, choices=None) -> None:
    """JobError unless a job's `value` (JSON) for `key` is of `kind` (null: the default) and one of `choices`."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    fits = {bool: isinstance(value, bool), int: whole, float: whole or isinstance(value, float)}
    if value is not None and not fits.get(kind, isinstance(value, str)):
        raise JobError(f"'{key}' takes {KINDS.get(kind, KINDS[str])}, got {json.dumps(value)}")
    if value is not None and choices and value not in choices:
        raise JobError(f"'{key}' must be one of {', '.join(choices)}, got {json.dumps(value)}")


def job_arguments(job: Job, inputs: dict[str, list[str]], ckpt_dir: str, device: str) -> tuple[str, argparse.Namespace]:
    """A job's model and its flags as the demos' parser gives them (`inputs`: the input flags each
    model takes), with the run's checkpoint folder and device; JobError naming a bad key or value.
    Keys and value types come from the options schema (see job_keys)."""
    spec = dict(job.spec)
    model = spec.pop("model", None)
    if model not in inputs:
        raise JobError(f"'model' must be one of {', '.join(inputs)}, got {json.dumps(model)}")
    if not spec.get("save_path"):
        raise JobError("the job has no save_path")
    if job.first_writer != job.line:
        raise JobError(f"save_path {spec['save_path']} is also that of line {job.first_writer}")
    keys, flags = job_keys(inputs[model]), flag_names(PipelineOptions)
    run = {flags[name].lstrip("-") for name in RUN_FIELDS}
    choices = {f.metadata["flag"]: f.metadata["argparse"].get("choices") for f in dataclasses.fields(PipelineOptions)}
    for key, value in spec.items():
        if key in run:
            raise JobError(f"'{key}' is set for the whole run (render_many.py --{key}), not per job")
        if key not in keys:
            raise JobError(f"unknown key '{key}' for a {model} job")
        check_value(key, value, keys[key], choices.get(key))
    given = {key: value for key, value in spec.items() if value is not None}
    args = vars(parser("", "", "", inputs[model], model).parse_args([]))
    return model, argparse.Namespace(**{**args, **given, "ckpt_dir": ckpt_dir, "device": device, "quiet": True})


def run_jobs(
    jobs: list[Job], inputs: dict[str, list[str]], ckpt_dir: str, device: torch.device, rank: int = 0
) -> list[JobResult]:
    """Render `jobs` one after the other, logging a progress line (with throughput) per job.

    Pipelines are made on first use and kept for the jobs that share their settings. Run inside
    `stop_on_signals()`: a signal stops the current job without leaving its output file behind.
    """
    pipelines: dict[PipelineOptions, TalkingHeadPipeline] = {}
    results, frames, start = [], 0, time.perf_counter()
    for count, job in enumerate(jobs, 1):
        result = _run_job(job, inputs, ckpt_dir, device, pipelines)
        result.rank = rank
        results.append(result)
        frames += result.frames
        done = f"rank {rank}: {count}/{len(jobs)} jobs, {frames / (time.perf_counter() - start):.2f} frames/s"
        if result.status == "failed":
            log.warning("%s line %d failed: %s [%s]", job.file, job.line, result.error, done)
        elif result.status == "skipped":
            log.info("line %d skipped: %s exists [%s]", job.line, result.save_path, done)
        else:
            speed = result.frames / result.seconds
            log.info(
                "line %d done: %s, %d frames in %.1f s (%.2f frames/s) [%s]",
                *(job.line, result.save_path, result.frames, result.seconds, speed, done),
            )
    return results


def _run_job(job: Job, inputs: dict[str, list[str]], ckpt_dir: str, device: torch.device, pipelines: dict) -> JobResult:
    """Render one job (or skip it); a failure becomes a 'failed' result with a one-line error."""
    start = time.perf_counter()
    save_path = job.spec.get("save_path")
    save_path = None if save_path is None else str(save_path)
    try:
        model, args = job_arguments(job, inputs, ckpt_dir, str(device))
        output = check_save_path(args.save_path, create_folder=True)
        if output.exists():
            return JobResult(job.line, save_path, "skipped")
        options = pipeline_options(args, model)
        if options not in pipelines:
            log.info("line %d: loading the %s model", job.line, model)
            pipelines[options] = TalkingHeadPipeline.from_options(options)
        written = render_file(pipelines[options], args, output)
    except (EDTalkError, ValueError) as exc:
        return JobResult(job.line, save_path, "failed", _one_line(exc))
    except Exception as exc:  # a bug or a device failure (out of memory...): recorded, the next job runs
        log.exception("line %d: unexpected error", job.line)
        return JobResult(job.line, save_path, "failed", f"{type(exc).__name__}: {_one_line(exc)}")
    return JobResult(job.line, save_path, "done", frames=written.frames, seconds=time.perf_counter() - start)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def join_ranks(device_name: str) -> tuple[torch.device, int, int]:
    """(device, rank, world size). In a process of several (RANK set) this joins the process group (gloo: only the
    report crosses processes) and, on GPUs, takes cuda:LOCAL_RANK; otherwise rank 0 of 1."""
    device = resolve_device(device_name)
    if "RANK" not in os.environ:
        return device, 0, 1
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=RANK_TIMEOUT)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device, dist.get_rank(), dist.get_world_size()


def gather_results(results: list[JobResult]) -> list[JobResult]:
    """Every rank's results, in job-list order (each rank gets them all)."""
    if not dist.is_initialized():
        return results
    everything = [None] * dist.get_world_size()
    dist.all_gather_object(everything, results)
    return sorted((r for part in everything for r in part), key=lambda r: r.line)


def report(results: list[JobResult], seconds: float) -> dict:
    """The run's report: totals (jobs, done, skipped, failed, frames, seconds), then one entry per job."""
    counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    frames = sum(r.frames for r in results)
    return dict(
        jobs=len(results), **counts, frames=frames, seconds=round(seconds, 3), results=list(map(asdict, results))
    )


def write_report(content: dict, path: str | Path) -> None:
    """Write a report as JSON, atomically."""
    with write_atomically(Path(path)) as file:
        file.write(json.dumps(content, indent=1).encode())


def render_many(
    jobs_path: str | Path,
    inputs: dict[str, list[str]],
    ckpt_dir: str | Path,
    device_name: str = "auto",
    report_path: str | Path | None = None,
) -> int:
    """Render every job of a job list (this process's share with several processes) and write the report
    (rank 0); the exit code: 0 if every job is done or skipped, 1 if one failed or the list is
    unreadable, 130 / 143 on SIGINT / SIGTERM (the unfinished clip is removed; run again to go on)."""
    start = time.perf_counter()
    rank = 0
    try:
        with stop_on_signals():
            device, rank, world = join_ranks(device_name)
            if report_path is not None and not Path(report_path).parent.is_dir():
                raise JobError(f"the folder of --report {report_path} does not exist")
            jobs = read_jobs(jobs_path)
            results = gather_results(run_jobs(jobs[rank::world], inputs, str(ckpt_dir), device, rank))
            if rank == 0:
                _summarise(results, report_path, time.perf_counter() - start)
            if dist.is_initialized():
                dist.barrier()  # the report is written before any rank exits (torchrun stops the rest then)
    except Interrupted as stop:
        log.error("interrupted")
        return stop.exit_code
    except EDTalkError as exc:
        if rank == 0:
            log.error("error: %s", exc)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 1 if any(r.status == "failed" for r in results) else 0


def _summarise(results: list[JobResult], report_path: str | Path | None, seconds: float) -> None:
    """Write the report (if asked for) and log its totals."""
    totals = report(results, seconds)
    if report_path is not None:
        write_report(totals, report_path)
    log.info(
        "%d jobs: %d done, %d skipped, %d failed; %d frames in %.1f s (%.2f frames/s)%s",
        *(totals[key] for key in ("jobs", "done", "skipped", "failed", "frames", "seconds")),
        totals["frames"] / seconds,
        f"; report: {report_path}" if report_path else "",
    )
