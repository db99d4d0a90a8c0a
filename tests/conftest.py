"""Shared fixtures: the in-repo parity fixtures and media, synthetic official-format weights (made once, cached)."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from .cache import made_once

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"  # see tests/fixtures/README.md
PARITY = FIXTURES / "parity"  # reference outputs of the official code + weight checksums
MEDIA = FIXTURES / "media"  # face image, head-motion video, speech
TABLES = FIXTURES / "tables"  # official state-dict tables (key, shape, dtype, kind)
GENERATOR = ROOT / "tests" / "synthetic_weights.py"
WEIGHTS_CACHE = ROOT / ".cache" / "test_weights"
# `--backend auto` renders with PyTorch in the suite and in the processes it starts: OpenVINO exports and
# compiles per weights and shape, minutes on 2 cores (tests/test_backends.py tests it and what auto picks)
os.environ["EDTALK_BACKEND"] = "torch"


def _weights_stamp() -> str:
    """Hash of our generator and the tables: regenerate the cached weights when they change."""
    h = hashlib.sha256()
    for path in [GENERATOR, *sorted(TABLES.glob("*_state_dict.tsv"))]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def synthetic_ckpts() -> Path:
    """Folder with synthetic EDTalk.pt, EDTalk_lip_pose.pt and Audio2Lip.pt (official format)."""
    from .synthetic_weights import write_checkpoints

    return made_once(WEIGHTS_CACHE, _weights_stamp(), lambda folder: write_checkpoints(folder, TABLES))


NARROW_CACHE = ROOT / ".cache" / "test_weights_narrow"
NARROW_DIVISOR = 8  # a frame renders about 20 times faster than with the official widths


@pytest.fixture(scope="session")
def narrow_ckpts() -> Path:
    """Folder with EDTalk.pt, EDTalk_lip_pose.pt (every width / 8) and Audio2Lip.pt: for the tests
    of everything around the networks (demos, UI, jobs, live, training plumbing); the numbers of
    the official networks are tested on `synthetic_ckpts`."""
    from .synthetic_weights import write_narrow_checkpoints

    h = hashlib.sha256(_weights_stamp().encode())
    for name in ("encoder.py", "decoder.py", "generator.py"):
        h.update((ROOT / "networks" / name).read_bytes())
    h.update(str(NARROW_DIVISOR).encode())
    return made_once(NARROW_CACHE, h.hexdigest()[:16], lambda folder: write_narrow_checkpoints(folder, NARROW_DIVISOR))


GFPGAN_FIXTURES = FIXTURES / "gfpgan"  # GFPGAN parity fixture, state-dict table, weight checksums
GFPGAN_CACHE = ROOT / ".cache" / "test_gfpgan_weights"


@pytest.fixture(scope="session")
def gfpgan_ckpt() -> Path:
    """Synthetic GFPGANv1.4-format checkpoint ({'params_ema': ...}, seed 1, about 349 MB), made once."""
    from .synthetic_gfpgan_weights import FILENAME, SEED, write_checkpoint

    h = hashlib.sha256()
    table = GFPGAN_FIXTURES / "GFPGANv1Clean_state_dict.tsv"
    for path in (ROOT / "tests" / "synthetic_gfpgan_weights.py", GENERATOR, table):
        h.update(path.read_bytes())
    return made_once(GFPGAN_CACHE, h.hexdigest()[:16], write_checkpoint) / FILENAME.format(seed=SEED)


SYNCNET_CACHE = ROOT / ".cache" / "test_syncnet_weights"


@pytest.fixture(scope="session")
def syncnet_ckpt() -> Path:
    """Synthetic `syncnet_v2.model` (the 2019 release's legacy serialisation, about 55 MB), made once."""
    from .synthetic_syncnet_weights import FILENAME, TABLE, write_weights

    h = hashlib.sha256()
    for path in (ROOT / "tests" / "synthetic_syncnet_weights.py", TABLE):
        h.update(path.read_bytes())
    return made_once(SYNCNET_CACHE, h.hexdigest()[:16], write_weights) / FILENAME


def _generator(path: Path):
    import edtalk

    return edtalk.load_generator(path)


@pytest.fixture(scope="session")
def full_generator(synthetic_ckpts):
    return _generator(synthetic_ckpts / "EDTalk.pt")


@pytest.fixture(scope="session")
def lip_pose_generator(synthetic_ckpts):
    return _generator(synthetic_ckpts / "EDTalk_lip_pose.pt")


@pytest.fixture(scope="session")
def narrow_full_generator(narrow_ckpts):
    return _generator(narrow_ckpts / "EDTalk.pt")


@pytest.fixture(scope="session")
def narrow_lip_pose_generator(narrow_ckpts):
    return _generator(narrow_ckpts / "EDTalk_lip_pose.pt")


@pytest.fixture(scope="session")
def audio2lip(synthetic_ckpts):
    import edtalk

    return edtalk.load_audio2lip(synthetic_ckpts / "Audio2Lip.pt")


def load_fixture(name: str) -> dict[str, torch.Tensor]:
    """A parity .npz as float32 tensors (float16 images are cast unchanged, as the fixtures ask)."""
    with np.load(PARITY / name) as data:
        return {k: torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in data.files}


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield
