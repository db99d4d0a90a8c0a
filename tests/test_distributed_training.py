"""Sampling across epochs, workers and processes; DistributedDataParallel replicas; exact resume;
validation and the best checkpoint."""

import json
import subprocess
import time

import pytest
import torch

from train.config import TrainConfig
from train.datasets import AudioWindowDataset, PairDataset
from train.sampling import endless_batches

from .test_data_preprocess import raw_dir  # noqa: F401  (fixture)
from .test_training import data, script  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def many(data):  # noqa: F811
    """The training set with a `many` list naming every clip four times (16 items, 12 with audio),
    enough for two processes with two samples each per step."""
    names = json.loads((data / "lists" / "all.json").read_text())
    (data / "lists" / "many.json").write_text(json.dumps(names * 4))
    return data


def test_every_epoch_draws_new_samples_in_every_worker_and_no_clip_twice_across_processes(many):
    dataset = PairDataset(many, "many", seed=0)
    cfg = TrainConfig(data=str(many), batch_size=2, workers=2, seed=0)
    steps_per_epoch = len(dataset) // 2 // cfg.batch_size
    seen = {0: {}, 1: {}}  # epoch -> index -> target image
    for rank in (0, 1):
        batches = endless_batches(dataset, cfg, 0, rank, 2)  # persistent worker processes
        for step in range(2 * steps_per_epoch):
            batch = next(batches)
            for index, target in zip(batch["index"].tolist(), batch["target"]):
                assert index not in seen[step // steps_per_epoch], "a clip was drawn twice in one epoch"
                seen[step // steps_per_epoch][index] = target
    assert len(seen[0]) == len(seen[1]) == len(dataset)
    changed = [not torch.equal(seen[0][i], seen[1][i]) for i in seen[0]]
    assert sum(changed) >= len(changed) - 1, "epoch 1 repeated epoch 0's frames"


def test_resuming_mid_epoch_continues_with_the_batches_an_uninterrupted_run_sees(many):
    dataset = AudioWindowDataset(many, "many", seed=0)
    cfg = TrainConfig(data=str(many), batch_size=2, workers=0, seed=0)
    key = lambda batch: list(zip(batch["index"].tolist(), batch["start"].tolist()))  # noqa: E731
    uninterrupted = endless_batches(dataset, cfg, 0, 1, 2)
    expected = [key(next(uninterrupted)) for _ in range(5)]
    resumed = endless_batches(dataset, cfg, 2, 1, 2)  # 3 steps per epoch: resumes inside epoch 0
    assert [key(next(resumed)) for _ in range(3)] == expected[2:]


STEPS = 4


def _kill_all(run_dir):
    """SIGKILL every process whose command line names `run_dir` (torchrun, its workers, their
    DataLoader workers) at once, as a crash would, and wait until they are gone."""
    subprocess.run(["pkill", "-KILL", "-f", str(run_dir)], check=False)
    deadline = time.time() + 60
    while subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True).returncode == 0:
        assert time.time() < deadline, f"processes of {run_dir} survived SIGKILL"
        time.sleep(0.05)


def _stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_ddp_replicas_agree_a_killed_run_resumes_exactly_and_validation_keeps_the_best(many, tmp_path):
    common = ["--data", many, "--split", "many", "--batch_size", 2, "--workers", 2, "--log_every", 1]
    common += ["--save_every", 1, "--keep_checkpoints", 10, "--val_every", 1, "--val_split", "all"]

    def command(folder, steps, *extra):
        return script("train_syncnet", *common, "--run_dir", folder, "--steps", steps, *extra, nproc=2)

    def run(folder, steps, *extra):
        cmd, env = command(folder, steps, *extra)
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(whole, STEPS)
    cmd, env = command(killed, 1000)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list((killed / "checkpoints").glob("[0-9]*.pt")) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        _kill_all(killed)  # torchrun starts its workers in sessions of their own: kill each one
        proc.wait()
    saved = max(int(p.stem) for p in (killed / "checkpoints").glob("[0-9]*.pt"))
    assert saved < STEPS
    assert f"at step {saved}" in run(killed, STEPS, "--resume", "auto").stderr

    final = torch.load(whole / "checkpoints" / f"{STEPS:06d}.pt", weights_only=True)["syncnet"]
    again = torch.load(killed / "checkpoints" / f"{STEPS:06d}.pt", weights_only=True)["syncnet"]
    for key, value in final.items():
        torch.testing.assert_close(again[key], value, atol=1e-5, rtol=1e-4, msg=key)
    first = torch.load(whole / "checkpoints" / "000001.pt", weights_only=True)["syncnet"]
    assert any(not torch.allclose(first[k].float(), v.float()) for k, v in final.items()), "nothing was trained"

    stats = _stats(whole)
    saved_rows = [row for row in stats if "replica_divergence" in row]
    assert len(saved_rows) == STEPS and all(row["replica_divergence"] < 1e-7 for row in saved_rows)
    validated = {row["step"]: row for row in stats if "val_sync" in row}
    assert sorted(validated) == list(range(1, STEPS + 1))
    assert all(0 <= row["val_accuracy"] <= 1 and row["val_sync"] > 0 for row in validated.values())
    best = json.loads((whole / "checkpoints" / "best.json").read_text())
    assert best["step"] == min(validated, key=lambda s: validated[s]["val_sync"])
    best_state = torch.load(whole / "checkpoints" / "best.pt", weights_only=True)
    assert best_state["step"] == best["step"]
    periodic = torch.load(whole / "checkpoints" / f"{best['step']:06d}.pt", weights_only=True)["syncnet"]
    for key, value in periodic.items():
        assert torch.equal(best_state["syncnet"][key], value), key  # a copy of that step's weights
