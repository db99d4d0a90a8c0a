"""Checkpoint loading: kinds told apart, clear errors, expression weights, the download helper."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import edtalk
from edtalk import CheckpointError

from .conftest import ROOT


def test_loads_both_generators_in_eval_mode(full_generator, lip_pose_generator):
    assert full_generator.has_expression and not full_generator.training
    assert (full_generator.config.lip_dim, full_generator.config.pose_dim, full_generator.config.exp_dim) == (20, 6, 10)
    assert not lip_pose_generator.has_expression
    assert not hasattr(lip_pose_generator, "direction_exp")


def test_wrong_kind_for_the_mode(synthetic_ckpts):
    with pytest.raises(
        CheckpointError, match=r"holds the lip-pose generator, but this mode needs the full generator EDTalk.pt"
    ):
        edtalk.load_generator(synthetic_ckpts / "EDTalk_lip_pose.pt", kind="full")
    with pytest.raises(CheckpointError, match=r"holds the full generator, but this mode needs the lip-pose generator"):
        edtalk.load_generator(synthetic_ckpts / "EDTalk.pt", kind="lip_pose")
    with pytest.raises(CheckpointError, match=r"Audio2Lip.pt is an Audio2Lip checkpoint, but a generator checkpoint"):
        edtalk.load_generator(synthetic_ckpts / "Audio2Lip.pt")
    with pytest.raises(CheckpointError, match=r"EDTalk.pt is a generator checkpoint, but an Audio2Lip checkpoint"):
        edtalk.load_audio2lip(synthetic_ckpts / "EDTalk.pt")


def test_missing_checkpoint_says_where_to_get_it(tmp_path):
    with pytest.raises(
        CheckpointError, match=r"checkpoint not found: .*EDTalk.pt; get EDTalk.pt with .*huggingface.co"
    ):
        edtalk.load_generator(tmp_path / "EDTalk.pt")


def test_unreadable_and_mismatched_files(tmp_path, synthetic_ckpts):
    junk = tmp_path / "EDTalk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*: file is truncated or corrupt: re-download"):
        edtalk.load_generator(junk)
    state = torch.load(synthetic_ckpts / "EDTalk_lip_pose.pt", weights_only=True)["gen"]
    del state["dec.to_rgb1.bias"]
    broken = tmp_path / "broken.pt"
    torch.save({"gen": state}, broken)
    with pytest.raises(CheckpointError, match=r"does not match the network: 1 missing keys \(e.g. dec.to_rgb1.bias\)"):
        edtalk.load_generator(broken)


def test_training_style_checkpoint_with_prefixes_and_args(tmp_path, synthetic_ckpts, lip_pose_generator):
    """DataParallel/compile prefixes are stripped; a pickled argparse.Namespace is allowed."""
    import argparse

    state = torch.load(synthetic_ckpts / "EDTalk_lip_pose.pt", weights_only=True)["gen"]
    path = tmp_path / "000100.pt"
    torch.save({"gen": {f"module.{k}": v for k, v in state.items()}, "args": argparse.Namespace(lr=0.002)}, path)
    gen = edtalk.load_generator(path)
    for a, b in zip(gen.parameters(), lip_pose_generator.parameters()):
        assert torch.equal(a, b)


def make_expression_folder(folder, names=edtalk.EXPRESSIONS):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        np.save(folder / f"{name}.npy", np.full((1, 10), i, dtype=np.float32))
    return folder


def test_expression_weights(tmp_path):
    folder = make_expression_folder(tmp_path / "predefined_exp_weights")
    weights = edtalk.load_expression_weights(folder)
    assert sorted(weights) == sorted(edtalk.EXPRESSIONS)
    assert weights["happy"].shape == (1, 10) and weights["happy"].dtype == torch.float32
    assert weights["happy"][0, 0].item() == edtalk.EXPRESSIONS.index("happy")
    assert list(edtalk.load_expression_weights(folder, ("sad",))) == ["sad"]
    with pytest.raises(CheckpointError, match=r"no expression 'joyful' in .*; available: angry, contempt"):
        edtalk.load_expression_weights(folder, ("joyful",))
    np.save(folder / "neutral.npy", np.zeros(0, dtype=np.float32))  # as in the official test_data copy
    with pytest.raises(CheckpointError, match=r"neutral.npy have shape \(0,\), expected \(1, 10\)"):
        edtalk.load_expression_weight(folder / "neutral.npy")
    with pytest.raises(CheckpointError, match=r"expression weight folder not found"):
        edtalk.load_expression_weights(tmp_path / "nowhere")


def test_expression_weights_drive_the_full_generator(tmp_path, full_generator):
    folder = make_expression_folder(tmp_path / "w", ("happy",))
    happy = edtalk.load_expression_weights(folder)["happy"] * 0.1
    source = torch.zeros(1, 3, 256, 256)
    out = full_generator.animate(source, torch.zeros(2, 20), torch.zeros(2, 6), happy)
    assert out.shape == (2, 3, 256, 256) and torch.isfinite(out).all()


def test_device_setting():
    assert edtalk.resolve_device("cpu") == torch.device("cpu")
    assert edtalk.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(edtalk.EDTalkError, match="unknown device 'tpu'"):
        edtalk.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(edtalk.EDTalkError, match="no CUDA GPU"):
            edtalk.resolve_device("cuda")


# ---- download_ckpts.py ---------------------------------------------------------------------------


def run_download(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(ROOT / "download_ckpts.py"), *args], capture_output=True, text=True, env=env, cwd=ROOT
    )


def test_download_without_network_says_what_to_do(tmp_path):
    result = run_download("--ckpt_dir", str(tmp_path / "ckpts"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Cannot reach Hugging Face" in lines[0]
    assert "EDTalk.pt, EDTalk_lip_pose.pt, Audio2Lip.pt and predefined_exp_weights/*.npy" in lines[0]
    assert f"put them in {tmp_path / 'ckpts'}/" in lines[0]
    assert not any((tmp_path / "ckpts").glob("*.pt"))


def test_download_check_verifies_by_loading(tmp_path, synthetic_ckpts):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name in edtalk.CHECKPOINTS:
        (folder / name).symlink_to(synthetic_ckpts / name)
    make_expression_folder(folder / "predefined_exp_weights")
    for args in (["--check"], []):  # all present: no network needed, even without --check
        result = run_download(*args, "--ckpt_dir", str(folder))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all checkpoints load" in result.stdout
    (folder / "EDTalk.pt").unlink()
    (folder / "EDTalk.pt").symlink_to(synthetic_ckpts / "EDTalk_lip_pose.pt")  # wrong file under the name
    result = run_download("--check", "--ckpt_dir", str(folder))
    assert result.returncode == 1
    assert "holds the lip-pose generator, but this mode needs the full generator" in result.stdout


def test_wanted_files_maps_repository_layout():
    sys.path.insert(0, str(ROOT))
    from download_ckpts import wanted_files

    files = ["README.md", "ckpts/EDTalk.pt", "Audio2Lip.pt", "ckpts/predefined_exp_weights/happy.npy", "x/other.pt"]
    assert wanted_files(files) == {
        "ckpts/EDTalk.pt": "EDTalk.pt",
        "Audio2Lip.pt": "Audio2Lip.pt",
        "ckpts/predefined_exp_weights/happy.npy": "predefined_exp_weights/happy.npy",
    }
