"""Training checkpoints: official-format entries plus optimiser state, step and config.

A generator stage writes {'gen', 'dis', 'g_optim', 'd_optim', 'scaler', 'step', 'config'}, so every
training checkpoint is also an inference checkpoint for edtalk.load_generator; the audio stage
writes {'audio2lip', ...} for edtalk.load_audio2lip. Files are `<run_dir>/checkpoints/<step:06d>.pt`,
and `best.pt` for the step with the best validation metric (`best.json` says which step and its metrics).
"""

import json
from pathlib import Path

import torch

from edtalk.checkpoints import read_checkpoint
from edtalk.errors import CheckpointError
from edtalk.files import write_atomically


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_as(run_dir: str | Path, name: str, payload: dict) -> Path:
    """Write `<run_dir>/checkpoints/<name>` atomically (a temporary file, then a rename)."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with write_atomically(path) as file:
        torch.save(payload, file)
    return path


def periodic(run_dir: str | Path) -> list[Path]:
    """The periodic checkpoints `<step>.pt`, sorted by step (a number, so 1000000.pt comes after 999999.pt)."""
    return sorted((p for p in checkpoint_dir(run_dir).glob("*.pt") if p.stem.isdigit()), key=lambda p: int(p.stem))


def save(run_dir: str | Path, step: int, payload: dict, keep: int) -> Path:
    """Write the periodic checkpoint of `step` and keep only the newest `keep` of them."""
    path = save_as(run_dir, f"{step:06d}.pt", payload)
    for old in periodic(run_dir)[:-keep]:
        old.unlink()
    return path


def save_best(run_dir: str | Path, payload: dict, record: dict) -> Path:
    """Write checkpoints/best.pt and checkpoints/best.json (`record`: its step and validation
    metrics), each atomically."""
    path = save_as(run_dir, "best.pt", payload)
    with write_atomically(best_record_path(run_dir)) as file:
        file.write(json.dumps(record).encode())
    return path


def best_record_path(run_dir: str | Path) -> Path:
    return checkpoint_dir(run_dir) / "best.json"


def latest(run_dir: str | Path) -> Path | None:
    """The periodic checkpoint of the highest step (None when there is none)."""
    files = periodic(run_dir)
    return files[-1] if files else None


def read(path: str | Path, what: str = "checkpoint") -> dict:
    """edtalk.checkpoints.read_checkpoint for the training scripts: a missing or unreadable file
    ends the run with its one-line message (SystemExit)."""
    try:
        return read_checkpoint(path, what)
    except CheckpointError as exc:
        raise SystemExit(str(exc)) from None


def load(path: str | Path) -> dict:
    """A training or EDTalk checkpoint as plain data (see `read`)."""
    data = read(path)
    if "step" not in data and "gen" not in data and "audio2lip" not in data:
        raise SystemExit(f"{path} is not a training or EDTalk checkpoint")
    return data
