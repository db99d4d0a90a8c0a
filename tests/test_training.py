"""Training scripts: a few steps under torchrun (gloo), resume after a kill, checkpoints that load."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import edtalk
from train.stages import EncoderGeneratorStage

from .conftest import ROOT
from .test_data_preprocess import CFG, raw_dir  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def data(raw_dir, tmp_path_factory):  # noqa: F811
    """The pre-processing tests' raw videos as a training set, with an `all` list of every clip."""
    from data_preprocess.lmdb_store import LmdbReader
    from data_preprocess.prepare_dataset import prepare

    out = tmp_path_factory.mktemp("train_data")
    prepare(raw_dir, out, CFG, progress=False)
    (out / "lists" / "all.json").write_text(json.dumps(LmdbReader(out / "lmdb").names()))
    return out


def script(name, *args, nproc=1):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
        if nproc > 1
        else [sys.executable]
    )
    cmd = [*launcher, str(ROOT / "train" / f"{name}.py"), *map(str, args)]
    return cmd, env


COMMON = ["--split", "all", "--workers", "0", "--log_every", "1", "--save_every", "1"]


def test_e_g_under_torchrun_then_resume_and_render(data, tmp_path, synthetic_ckpts):
    run = tmp_path / "eg"
    cmd, env = script("train_E_G", "--data", data, "--run_dir", run, "--steps", 1, "--batch_size", 1, *COMMON, nproc=2)
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    assert (run / "checkpoints" / "000001.pt").exists() and (run / "config.yaml").exists()
    assert (run / "samples" / "000001.png").exists()
    cmd, env = script(
        "train_E_G", "--data", data, "--run_dir", run, "--steps", 2, "--batch_size", 1, "--resume", "auto", *COMMON
    )
    result = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert "resumed from" in result.stderr and "at step 1" in result.stderr
    state = torch.load(run / "checkpoints" / "000002.pt", weights_only=True)
    assert state["step"] == 2 and {"gen", "dis", "g_optim", "d_optim", "scaler", "config"} <= set(state)
    # the training checkpoint renders through the demo pipeline
    import demo_lip_pose

    out = tmp_path / "trained.mp4"
    args = ["--source_path", ROOT.parent / "shared/reference/media/identity_source.jpg", "--no_crop", "--quiet"]
    args += ["--audio_driving_path", ROOT.parent / "shared/reference/media/speech_16k_e2e.wav"]
    args += ["--ckpt_dir", synthetic_ckpts, "--generator_ckpt", run / "checkpoints" / "000002.pt", "--save_path", out]
    assert demo_lip_pose.main(list(map(str, args))) == 0
    assert out.exists()


def test_killed_run_resumes_from_its_last_checkpoint(data, tmp_path):
    run = tmp_path / "killed"
    cmd, env = script("train_syncnet", "--data", data, "--run_dir", run, "--steps", 1000, "--batch_size", 2, *COMMON)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list((run / "checkpoints").glob("*.pt")) and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = max(int(p.stem) for p in (run / "checkpoints").glob("[0-9]*.pt"))
    cmd, env = script(
        "train_syncnet",
        "--data",
        data,
        "--run_dir",
        run,
        "--steps",
        saved + 1,
        "--batch_size",
        2,
        "--resume",
        "auto",
        *COMMON,
    )
    result = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert f"at step {saved}" in result.stderr
    assert (run / "checkpoints" / f"{saved + 1:06d}.pt").exists()


@pytest.mark.parametrize(
    "name, extra",
    [
        ("train_Mouth_Pose_decouple", ["--batch_size", 1]),
        ("train_Expression_decouple", ["--batch_size", 1]),
        ("train_fine_tune", ["--batch_size", 1, "--only_fine_tune_dec"]),
        ("train_audio2mouth", ["--batch_size", 1]),
    ],
)
def test_other_stages_run_under_torchrun(data, tmp_path, synthetic_ckpts, name, extra):
    lip_pose = synthetic_ckpts / "EDTalk_lip_pose.pt"
    init = {
        "train_fine_tune": ["--init", lip_pose],
        "train_Expression_decouple": ["--init", lip_pose],
        "train_audio2mouth": ["--generator", lip_pose],
    }.get(name, [])
    run = tmp_path / name
    cmd, env = script(name, "--data", data, "--run_dir", run, "--steps", 1, *extra, *init, *COMMON, nproc=2)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    path = run / "checkpoints" / "000001.pt"
    if name == "train_audio2mouth":
        edtalk.load_audio2lip(path)
    else:
        gen = edtalk.load_generator(path)
        assert gen.has_expression == (name == "train_Expression_decouple")


def test_overfitting_one_pair_lowers_the_loss(data):
    from data_preprocess.dataset import PairDataset
    from networks import LIP_POSE, Generator

    torch.manual_seed(0)
    stage = EncoderGeneratorStage()
    gen = Generator(LIP_POSE)
    item = PairDataset(data, "all", seed=0)[0]
    batch = {k: v[None] for k, v in item.items()}
    optim = torch.optim.Adam(gen.parameters(), lr=1e-3)
    values = []
    with torch.enable_grad():
        for _ in range(8):
            loss = torch.nn.functional.l1_loss(stage.reconstruct({"gen": gen}, batch), batch["target"])
            optim.zero_grad()
            loss.backward()
            optim.step()
            values.append(loss.item())
    assert values[-1] < 0.8 * values[0] and values[-1] < min(values[:4]), values


def test_training_benchmark_reports_every_figure(data, tmp_path):
    out = tmp_path / "train.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--data", str(data), "--stages", "syncnet"]
    cmd += ["--steps", "1", "--device", "cpu", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "syncnet" in result.stdout and "s/step" in result.stdout
    (row,) = json.loads(out.read_text())["stages"]
    assert row["stage"] == "syncnet" and row["batch_size"] == 2 and row["device"] == "cpu"
    assert row["seconds_per_step"] > 0 and row["gflop_per_step"] > 1 and row["peak_rss_mb"] > 100
