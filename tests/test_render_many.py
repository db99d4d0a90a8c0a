"""render_many.py: a job list rendered by two processes, a failing job recorded while the others
render, one report, skips on a re-run; job lists and job lines with mistakes fail with one line."""

import json
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import render_many
from edtalk.jobs import Job, JobError, job_arguments, job_keys, read_jobs
from edtalk.motion_template import MotionTemplate, save_template
from edtalk.options import RenderOptions, flag_names

from .conftest import ROOT
from .test_demos import SOURCE, SPEECH, ckpt_dir, probe  # noqa: F401  (fixture)


def template(path, model, frames=3):
    """A made-up motion template (zero motion: the source's own pose and mouth)."""
    parts = {"lip": 20, "pose": 6, "exp": 10} if model == "full" else {"lip": 20, "pose": 6}
    coefficients = {part: np.zeros((frames, dim), np.float32) for part, dim in parts.items()}
    save_template(MotionTemplate(coefficients, 25.0, "made-up.mp4", model, "0"), path)
    return path


def write_jobs(path, *jobs):
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    return path


def render_many_processes(*args, nproc=2):
    """Run render_many.py with `nproc` CPU processes (--processes); hang guard only."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "render_many.py"), "--processes", str(nproc), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)


def test_two_processes_render_their_shares_record_a_bad_job_and_skip_outputs_on_a_rerun(ckpt_dir, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        {
            "model": "lip_pose",
            "source_path": str(SOURCE),
            "audio_driving_path": str(SPEECH),
            "pose_driving_path": str(template(tmp_path / "pose.npz", "lip_pose")),
            "no_crop": True,
            "save_path": str(out / "a.mp4"),
        },
        {
            "model": "full",
            "source_path": str(SOURCE),
            "lip_driving_path": str(template(tmp_path / "lip.npz", "full")),
            "audio_driving_path": str(SPEECH),  # a mouth template carries no soundtrack
            "exp_type": "happy",
            "no_crop": True,
            "save_path": str(out / "sub" / "b.mp4"),
        },
        {"model": "lip_pose", "source_path": str(SOURCE), "colour": "red", "save_path": str(out / "c.mp4")},
        {
            "model": "full",
            "source_path": str(tmp_path / "missing.jpg"),
            "no_crop": True,
            "save_path": str(out / "d.mp4"),
        },
    )
    report = tmp_path / "report.json"
    args = ["--jobs", jobs, "--ckpt_dir", ckpt_dir, "--device", "cpu", "--report", report]

    first = render_many_processes(*args)
    assert first.returncode == 1, first.stderr[-3000:]
    for crash in ("Traceback", "ChildFailedError", "SIGTERM", "signal"):
        assert crash not in first.stderr, first.stderr[-3000:]
    summary = json.loads(report.read_text())
    assert {k: summary[k] for k in ("jobs", "done", "skipped", "failed", "frames")} == dict(
        jobs=4, done=2, skipped=0, failed=2, frames=15
    ), first.stderr[-3000:]
    results = {r["line"]: r for r in summary["results"]}
    assert {line: (r["status"], r["rank"]) for line, r in results.items()} == {
        1: ("done", 0),
        2: ("done", 1),
        3: ("failed", 0),
        4: ("failed", 1),
    }
    assert results[3]["error"] == "unknown key 'colour' for a lip_pose job"
    assert re.fullmatch(r"image not found: .*missing.jpg", results[4]["error"])
    assert probe(out / "a.mp4") == (12, 25.0, (256, 256), True)  # the speech's length
    assert probe(out / "sub" / "b.mp4") == (3, 25.0, (256, 256), True)  # the mouth template's length
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.mp4", "sub", "sub/b.mp4"]
    assert re.search(
        r"line 1 done: .*a.mp4, 12 frames in [\d.]+ s \([\d.]+ frames/s\) \[rank 0: 1/2 jobs", first.stderr
    )
    assert f"{jobs} line 3 failed: unknown key 'colour' for a lip_pose job" in first.stderr
    assert first.stderr.count("loading the full model") == 1  # lines 2 and 4 share rank 1's pipeline
    assert re.search(r"4 jobs: 2 done, 0 skipped, 2 failed; 15 frames in", first.stderr)

    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    again = render_many_processes(*args)
    assert again.returncode == 1
    summary = json.loads(report.read_text())
    assert [r["status"] for r in summary["results"]] == ["skipped", "skipped", "failed", "failed"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == written


def test_a_list_of_good_jobs_exits_0_in_one_process(ckpt_dir, tmp_path, caplog):  # noqa: F811
    lip = str(template(tmp_path / "lip.npz", "lip_pose", frames=1))
    job = {"model": "lip_pose", "source_path": str(SOURCE), "lip_driving_path": lip, "audio_driving_path": str(SPEECH)}
    job["no_crop"] = True
    jobs = write_jobs(tmp_path / "jobs.jsonl", {**job, "save_path": str(tmp_path / "a.mp4")})
    with caplog.at_level(logging.INFO):
        code = render_many.main(["--jobs", str(jobs), "--ckpt_dir", str(ckpt_dir), "--device", "cpu"])
    assert code == 0 and probe(tmp_path / "a.mp4")[0] == 1
    assert "1 jobs: 1 done, 0 skipped, 0 failed" in caplog.text


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"model": "full"}\n{"model": "full",}\n', r"jobs.jsonl line 2: not valid JSON \(Expecting"),
        ('\n["full"]\n', r"jobs.jsonl line 2: a job is a JSON object \{\.\.\.\}, got \[\"full\"\]"),
        ("\n\n", r"jobs.jsonl holds no jobs"),
    ],
)
def test_an_unreadable_job_list_is_one_line_naming_the_line(tmp_path, caplog, text, message):
    (tmp_path / "jobs.jsonl").write_text(text)
    with pytest.raises(JobError, match=message):
        read_jobs(tmp_path / "jobs.jsonl")
    code = render_many.main(["--jobs", str(tmp_path / "jobs.jsonl"), "--device", "cpu"])
    assert code == 1 and re.search(message, caplog.text)


@pytest.mark.parametrize(
    "job, message",
    [
        (
            {"model": "lip_pose", "save_path": "a.mp4", "exp_type": "happy"},
            r"unknown key 'exp_type' for a lip_pose job",
        ),
        ({"model": "full", "save_path": "a.mp4", "save_motion": "m.npz"}, r"unknown key 'save_motion' for a full job"),
        ({"model": "full", "save_path": "a.mp4", "device": "cuda"}, r"'device' is set for the whole run"),
        ({"model": "full", "save_path": "a.mp4", "no_crop": "yes"}, r"'no_crop' takes true or false, got \"yes\""),
        ({"model": "full", "save_path": "a.mp4", "face_index": [1]}, r"'face_index' takes a whole number, got \[1\]"),
        (
            {"model": "full", "save_path": "a.mp4", "batch_size": "two"},
            r"'batch_size' takes a whole number, got \"two\"",
        ),
        ({"model": "full", "save_path": "a.mp4", "batch_size": 2.5}, r"'batch_size' takes a whole number, got 2.5"),
        ({"model": "full", "save_path": "a.mp4", "exp_scale": "big"}, r"'exp_scale' takes a number, got \"big\""),
        ({"model": "full", "save_path": "a.mp4", "exp_type": 3}, r"'exp_type' takes a string, got 3"),
        ({"model": "full", "save_path": "a.mp4", "precision": "fp64"}, r"'precision' must be one of auto, .*\"fp64\""),
        ({"model": "full", "save_path": "a.mp4", "quiet": True}, r"'quiet' is set for the whole run"),
        ({"model": "full", "save_path": "a.mp4", "fix_pose": True}, r"unknown key 'fix_pose' for a full job"),
        ({"model": "half", "save_path": "a.mp4"}, r"'model' must be one of full, lip_pose, got \"half\""),
        ({"model": "full"}, r"the job has no save_path"),
        ({"model": "full", "save_path": "./b.mp4"}, r"save_path ./b.mp4 is also that of line 1"),
    ],
)
def test_a_job_with_a_wrong_key_or_value_fails_with_one_line(tmp_path, job, message):
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", {"model": "full", "save_path": "b.mp4"}, job))
    with pytest.raises(JobError, match=message):
        job_arguments(jobs[1], render_many.INPUTS, "ckpts", "cpu")


def test_job_keys_and_types_come_from_the_options_schema():
    """Every option a model's demos offer is a job key with its type; run options and other models' are not."""
    full, lip_pose = job_keys(render_many.INPUTS["full"]), job_keys(render_many.INPUTS["lip_pose"])
    expected = dict(batch_size=int, exp_scale=float, no_crop=bool, exp_from_audio=bool, precision=str, face_sr=bool)
    assert {key: full[key] for key in expected} == expected
    assert full["pose_temperature"] is lip_pose["pose_temperature"] is float and lip_pose["fix_pose"] is bool
    for key in ("ckpt_dir", "device", "quiet", "save_motion", "model"):
        assert key not in full and key not in lip_pose
    assert {"exp_type", "exp_driving_path", "audio2exp_model_path"}.isdisjoint(lip_pose)
    every_render_flag = {flag.lstrip("-") for flag in flag_names(RenderOptions).values()}
    assert every_render_flag <= set(full) | set(lip_pose)  # a new option is a job key with no other change


def test_job_values_become_the_demo_flags():
    spec = {"model": "full", "save_path": "-a.mp4", "batch_size": 2, "paste_back": True, "no_crop": False}
    model, args = job_arguments(Job(1, spec, 1), render_many.INPUTS, "ck", "cpu")
    assert (model, args.save_path, args.batch_size, args.paste_back, args.no_crop) == ("full", "-a.mp4", 2, True, False)
    assert (args.ckpt_dir, args.device, args.quiet, args.exp_type) == ("ck", "cpu", True, None)
