"""HiSTalk end to end on a synthetic set whose mouth follows the speech loudness: training in the
shared loop (one process and torchrun), held-out LVE against the mean motion, the demo's files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import demo_HiSTalk
from edtalk.video_io import has_audio_stream, iter_frames
from evaluation.mesh import evaluate
from histalk import MeshAnimator
from histalk.layout import load_templates, subject_of
from histalk.speech import load_speech
from histalk.synthetic import make_synthetic_set
from train.train_histalk import main as train_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = '{"d_model": 32, "heads": 2}'


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("histalk")
    info = make_synthetic_set(root / "set")
    (root / "train.txt").write_text("\n".join(c for c in info["clips"] if int(c[-2:]) <= 6))
    (root / "val.txt").write_text("\n".join(c for c in info["clips"] if int(c[-2:]) > 6))
    return root


def _train_args(root: Path, run: Path, steps: int) -> list[str]:
    return [
        "--data", str(root / "set"), "--dataset", "custom", "--fps", "25", "--train_list", str(root / "train.txt"),
        "--val_list", str(root / "val.txt"), "--run_dir", str(run), "--steps", str(steps), "--audio_encoder", "mel",
        "--device", "cpu", "--lip_region", str(root / "set" / "regions" / "lve.txt"), "--model", SMALL,
        "--val_every", "100", "--window", "24",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(synthetic):
    run = synthetic / "run"
    assert train_main(_train_args(synthetic, run, 300) + ["--lr", "0.002"]) == 0
    return run


def test_held_out_lve_far_below_the_mean_motion(synthetic, trained):
    animator = MeshAnimator.load(trained / "checkpoints" / "best.pt", "cpu")
    set_dir, templates = synthetic / "set", load_templates(synthetic / "set")
    val = (synthetic / "val.txt").read_text().split()
    train = (synthetic / "train.txt").read_text().split()
    mean_motion = np.mean(
        [np.load(set_dir / "vertices_npy" / f"{c}.npy") - templates[subject_of(c)].reshape(-1) for c in train],
        axis=(0, 1),
    )
    for folder in ("pred", "mean"):
        (synthetic / folder).mkdir()
    for clip in val:
        template = templates[subject_of(clip)]
        frames = animator.predict(load_speech(set_dir / "wav" / f"{clip}.wav"), template, subject_of(clip))
        np.save(synthetic / "pred" / f"{clip}.npy", frames)
        np.save(synthetic / "mean" / f"{clip}.npy", np.tile(template.reshape(-1) + mean_motion, (len(frames), 1)))
    ours = evaluate(synthetic / "pred", set_dir, set_dir / "regions", val)
    baseline = evaluate(synthetic / "mean", set_dir, set_dir / "regions", val)
    assert baseline["lve"] > 1e-3  # the mouth really moves
    assert ours["lve"] < 0.3 * baseline["lve"], (ours, baseline)
    stats = [json.loads(line) for line in (trained / "stats.jsonl").read_text().splitlines()]
    assert any("val_lve" in row for row in stats)


def test_demo_writes_video_with_soundtrack_and_vertices(synthetic, trained, tmp_path):
    out = tmp_path / "out" / "F2_e07.mp4"
    argv = ["--model_path", str(trained / "checkpoints" / "best.pt"), "--audio_path"]
    argv += [str(synthetic / "set" / "wav" / "F2_e07.wav"), "--template_path", str(synthetic / "set" / "templates.pkl")]
    argv += ["--subject", "F2", "--condition", "F2", "--device", "cpu", "--save_path", str(out), "--size", "128"]
    assert demo_HiSTalk.main(argv + ["--save_meshes", str(tmp_path / "meshes"), "--quiet"]) == 0
    vertices = np.load(out.with_suffix(".npy"))
    assert vertices.shape == (50, 80 * 3)  # 2 s at 25 fps, 8 x 10 grid
    assert has_audio_stream(out)
    frames = list(iter_frames(out, fps=None))
    assert len(frames) == 50 and frames[0].shape == (128, 128, 3)
    assert frames[0].std() > 10  # a lit mesh on a plain background, not a blank frame
    assert len(list((tmp_path / "meshes").glob("*.ply"))) == 50


def test_demo_mistakes_are_one_line_errors_and_write_nothing(synthetic, trained, tmp_path, capsys):
    base = ["--model_path", str(trained / "checkpoints" / "best.pt"), "--audio_path"]
    base += [str(synthetic / "set" / "wav" / "F2_e07.wav"), "--save_path", str(tmp_path / "x.mp4"), "--quiet"]
    templates = str(synthetic / "set" / "templates.pkl")
    cases = {
        "--subject is required": ["--template_path", templates],
        "--subject Q9: not in": ["--template_path", templates, "--subject", "Q9"],
        "--style M9: not a training subject": ["--template_path", templates, "--subject", "F2", "--style", "M9"],
        "no such mesh file": ["--template_path", str(tmp_path / "none.ply")],
    }
    for message, extra in cases.items():
        assert demo_HiSTalk.main(base + extra) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_two_processes_under_torchrun(synthetic, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(ROOT / "train/train_histalk.py")]
    cmd += _train_args(synthetic, tmp_path / "run", 6) + ["--batch_size", "2", "--val_every", "3"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 6 and stats[-1]["replica_divergence"] < 1e-5
    animator = MeshAnimator.load(tmp_path / "run" / "checkpoints" / "best.pt", "cpu")
    assert animator.styles == ["F2", "F3"] and animator.fps == 25


def test_wav2vec2_encoder_from_a_local_folder(synthetic, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    transformers.Wav2Vec2Model(config).save_pretrained(tmp_path / "w2v")
    args = _train_args(synthetic, tmp_path / "run", 2)
    args[args.index("mel")] = "wav2vec2"
    with torch.enable_grad():  # conftest runs every test under no_grad
        assert train_main(args + ["--wav2vec2_path", str(tmp_path / "w2v"), "--batch_size", "2"]) == 0
    animator = MeshAnimator.load(tmp_path / "run" / "checkpoints" / "best.pt", "cpu")
    template = load_templates(synthetic / "set")["F3"]
    frames = animator.predict(load_speech(synthetic / "set" / "wav" / "F3_e01.wav"), template, "F3")
    assert frames.shape == (50, template.size) and np.isfinite(frames).all()


def test_demo_takes_a_mesh_file_as_template(synthetic, trained, tmp_path):
    out = tmp_path / "mesh.mp4"
    argv = ["--model_path", str(trained / "checkpoints" / "best.pt"), "--audio_path"]
    argv += [
        str(synthetic / "set" / "wav" / "F3_e08.wav"),
        "--template_path",
        str(synthetic / "set" / "templates" / "face.ply"),
    ]
    assert demo_HiSTalk.main(argv + ["--style", "F3", "--save_path", str(out), "--size", "64", "--quiet"]) == 0
    assert np.load(out.with_suffix(".npy")).shape == (50, 240) and has_audio_stream(out)
