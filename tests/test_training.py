"""Training scripts: a few steps under torchrun (gloo), resume after a kill, checkpoints that load."""

import json
import os
import subprocess
import sys

import pytest
import torch

import edtalk
from train.stages import EncoderGeneratorStage

from .conftest import MEDIA, ROOT
from .test_data_preprocess import CFG, raw_dir  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def data(raw_dir, tmp_path_factory):  # noqa: F811
    """The pre-processing tests' raw videos as a training set, with an `all` list of every clip and a
    `one` list of one held-out clip."""
    from data_preprocess.lmdb_store import LmdbReader
    from data_preprocess.prepare_dataset import prepare

    out = tmp_path_factory.mktemp("train_data")
    prepare(raw_dir, out, CFG, progress=False)
    (out / "lists" / "all.json").write_text(json.dumps(LmdbReader(out / "lmdb").names()))
    one = json.loads((out / "lists" / "test.json").read_text())[:1]
    (out / "lists" / "one.json").write_text(json.dumps(one))  # validation on one clip keeps the runs short
    return out


def script(name, *args, nproc=1):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if nproc > 1:
        env["OMP_NUM_THREADS"] = "1"  # one thread per process; one process alone uses every core
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
        if nproc > 1
        else [sys.executable]
    )
    cmd = [*launcher, str(ROOT / "train" / f"{name}.py"), *map(str, args)]
    return cmd, env


COMMON = ["--split", "all", "--val_split", "one", "--workers", "0", "--log_every", "1", "--save_every", "1"]
NARROW = ["--channel_divisor", "8"]  # the narrow test generators (tests/conftest.py)


def test_e_g_under_torchrun_then_resume_and_render(data, tmp_path, narrow_ckpts):
    run = tmp_path / "eg"
    args = ["--data", data, "--run_dir", run, "--batch_size", 1, *COMMON, *NARROW]
    cmd, env = script("train_E_G", *args, "--steps", 1, nproc=2)
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    assert (run / "checkpoints" / "000001.pt").exists() and (run / "config.yaml").exists()
    assert (run / "samples" / "000001.png").exists()
    cmd, env = script("train_E_G", *args, "--steps", 2, "--resume", "auto")
    result = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert "resumed from" in result.stderr and "at step 1" in result.stderr
    state = torch.load(run / "checkpoints" / "000002.pt", weights_only=True)
    assert state["step"] == 2 and {"gen", "dis", "g_optim", "d_optim", "scaler", "config"} <= set(state)
    # the training checkpoint renders through the demo pipeline
    import demo_lip_pose

    out = tmp_path / "trained.mp4"
    args = ["--source_path", MEDIA / "identity_source.jpg", "--no_crop", "--quiet"]
    args += ["--audio_driving_path", MEDIA / "speech_16k_e2e.wav"]
    args += ["--ckpt_dir", narrow_ckpts, "--generator_ckpt", run / "checkpoints" / "000002.pt", "--save_path", out]
    assert demo_lip_pose.main(list(map(str, args))) == 0
    assert out.exists()


def _is_expression(key):
    return key.startswith(("exp_fc.", "direction_exp.", "dec.fineadainresblock."))


# stage -> (extra flags, checkpoint entry, its frozen parameters, its trained parameters)
STAGE_CASES = {
    "Mouth_Pose_decouple": ([], "gen", lambda k: False, lambda k: True),
    "Expression_decouple": (["--init", "LIP_POSE"], "gen", lambda k: not _is_expression(k), _is_expression),
    "fine_tune": (
        ["--init", "LIP_POSE", "--only_fine_tune_dec"],
        "gen",
        lambda k: not k.startswith("dec."),
        lambda k: k.startswith("dec."),
    ),
    "audio2mouth": (
        ["--generator", "LIP_POSE", "--init", "AUDIO2LIP"],
        "audio2lip",
        lambda k: k.startswith("audio_encoder."),
        lambda k: k.startswith("mapping."),
    ),
}


@pytest.mark.parametrize("name", list(STAGE_CASES))
def test_other_stages_under_torchrun_train_only_their_parameters(data, tmp_path, narrow_ckpts, name):
    """One step in one process (DDP under torchrun is covered by the E_G test above and
    tests/test_distributed_training.py): frozen parameters untouched, trained ones moved, validation
    metrics logged, and the checkpoint loads for inference."""
    from train.config import parse_config
    from train.stages import STAGES

    extra, entry, frozen, trained = STAGE_CASES[name]
    files = {"LIP_POSE": narrow_ckpts / "EDTalk_lip_pose.pt", "AUDIO2LIP": narrow_ckpts / "Audio2Lip.pt"}
    run = tmp_path / name
    args = ["--data", data, "--run_dir", run, "--steps", 1, "--batch_size", 1, *COMMON, *NARROW]
    args = [str(files.get(str(arg), arg)) for arg in args + extra]
    cmd, env = script(f"train_{name}", *args)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]

    stage = STAGES[name]()
    torch.manual_seed(0)  # the run's seed, so the same initial weights
    before = stage.build(parse_config(args, stage, ""), torch.device("cpu"))[entry].state_dict()
    path = run / "checkpoints" / "000001.pt"
    after = torch.load(path, weights_only=True)[entry]
    model = edtalk.load_audio2lip(path) if entry == "audio2lip" else edtalk.load_generator(path)
    parameters = [k for k, _ in model.named_parameters()]
    assert [k for k in parameters if frozen(k) and not torch.equal(after[k], before[k])] == []
    assert any(trained(k) and not torch.equal(after[k], before[k]) for k in parameters), "nothing was trained"

    (row,) = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert row["val_psnr"] > 0 and row["val_l1"] > 0
    assert ("val_coef" in row) == (entry == "audio2lip")


def test_overfitting_one_pair_lowers_the_loss(data):
    """Six steps on one pair lower the reconstruction loss by more than 15 %. The encoder is frozen to
    halve the step time (its gradients are checked by the stage tests above)."""
    from dataclasses import replace

    from networks import LIP_POSE, Generator
    from train.datasets import PairDataset

    torch.manual_seed(0)
    stage = EncoderGeneratorStage()
    gen = Generator(replace(LIP_POSE, channel_divisor=int(NARROW[1])))
    gen.enc.requires_grad_(False)
    batch = next(iter(torch.utils.data.DataLoader(PairDataset(data, "all", seed=0), batch_size=1)))
    optim = torch.optim.Adam(gen.dec.parameters(), lr=1e-2)
    values = []
    with torch.enable_grad():
        for _ in range(6):
            loss = torch.nn.functional.l1_loss(stage.reconstruct({"gen": gen}, batch), batch["target"])
            optim.zero_grad()
            loss.backward()
            optim.step()
            values.append(loss.item())
    assert values[-1] < 0.85 * values[0] and values[-1] < min(values[:4]), values


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
