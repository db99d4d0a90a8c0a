#!/usr/bin/env python3
"""Deterministic synthetic (untrained) weights for GFPGAN v1.3/v1.4 (the "clean" architecture).

The parity fixture ``tests/fixtures/gfpgan/gfpgan_ref.npz`` was produced by the official
``GFPGANv1Clean`` running on synthetic weights (seed 1). This module rebuilds exactly those
weights, tensor for tensor, from ``tests/fixtures/gfpgan/GFPGANv1Clean_state_dict.tsv``.

The random stream is the one of :mod:`tests.synthetic_weights` (counter-based splitmix64,
Irwin-Hall(4) normals in float64, cast once to float32), here with stream names
``"gfpgan/<key>"`` and seed 1. Each value is ``float32(offset + scale * z)`` with
``offset``/``scale`` chosen per key by :data:`DECODER_RULES` / :data:`UNET_RULES` below; the
scales follow the clean architecture (plain conv/linear weights N(0, 1)/sqrt(fan_in),
pre-scaled modulated kernels, modulation biases near 1, SFT scale near 1, non-zero noise
strengths so that the stored noise maps matter).

File written by :func:`write_checkpoint` (the released format)::

    GFPGANv1.4_synthetic_seed1.pth   {'params_ema': state_dict}   (285 tensors, about 349 MB)

Command line: ``python tests/synthetic_gfpgan_weights.py --out DIR [--check]``; ``--check``
compares the sha256 of every tensor's float32 bytes (and of the whole state dict) with
``tests/fixtures/gfpgan/weights_checksums.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

try:
    from .synthetic_weights import Noise, read_table, standard_values
except ImportError:  # run as a script
    from synthetic_weights import Noise, read_table, standard_values

HERE = Path(__file__).resolve().parent
FIXTURE_DIR = HERE / "fixtures" / "gfpgan"
TABLE = FIXTURE_DIR / "GFPGANv1Clean_state_dict.tsv"
CHECKSUMS = FIXTURE_DIR / "weights_checksums.json"

SEED = 1
STREAM_PREFIX = "gfpgan/"
FILENAME = "GFPGANv1.4_synthetic_seed{seed}.pth"
TOP_KEY = "params_ema"


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output value: (o, i, k, k) conv and (o, i) linear -> i*k*k or i; a modulated kernel
    (1, o, i, k, k) -> i*k*k."""
    return math.prod(shape[2:]) if len(shape) == 5 else math.prod(shape[1:])


def per_fan_in(gain: float):
    return lambda shape: gain / math.sqrt(fan_in(shape))


def _is_to_rgb(key: str) -> bool:
    return ".to_rgb" in key  # to_rgb1 and to_rgbs.N


def _sft_last_conv(key: str) -> bool:
    return key.split(".")[2] == "2"  # condition_{scale,shift}.<level>.<0|2>.<weight|bias>


# StyleGAN2-clean decoder (keys under "stylegan_decoder."); the first matching rule wins.
DECODER_RULES = (
    ("stored noise maps", lambda k, s: ".noises.noise" in k, Noise(0.0, 1.0)),
    ("constant input", lambda k, s: k.endswith("constant_input.weight"), Noise(0.0, 1.0)),
    (
        "style MLP weights (unused at inference)",
        lambda k, s: ".style_mlp." in k and k.endswith("weight"),
        Noise(0.0, per_fan_in(math.sqrt(2.0 / 1.04))),
    ),
    ("style MLP biases", lambda k, s: ".style_mlp." in k, Noise(0.0, 0.02)),
    ("modulation linear weights", lambda k, s: k.endswith("modulation.weight"), Noise(0.0, per_fan_in(1.0))),
    ("modulation biases (official init 1)", lambda k, s: k.endswith("modulation.bias"), Noise(1.0, 0.1)),
    (
        "to-RGB kernels (not demodulated: they set the RGB range)",
        lambda k, s: _is_to_rgb(k) and k.endswith("modulated_conv.weight"),
        Noise(0.0, per_fan_in(0.17)),
    ),
    ("style conv kernels (demodulated)", lambda k, s: k.endswith("modulated_conv.weight"), Noise(0.0, per_fan_in(1.0))),
    ("noise strengths", lambda k, s: k.endswith(".weight") and tuple(s) == (1,), Noise(0.15, 0.05)),
    ("to-RGB biases", lambda k, s: _is_to_rgb(k) and k.endswith(".bias"), Noise(0.0, 0.03)),
    ("style conv activation biases", lambda k, s: k.endswith(".bias"), Noise(0.0, 0.1)),
)

# U-Net, style-code linear and SFT branches; the first matching rule wins.
UNET_RULES = (
    (
        "SFT second conv weights",
        lambda k, s: k.startswith("condition_") and _sft_last_conv(k) and k.endswith("weight"),
        Noise(0.0, per_fan_in(0.25)),
    ),
    (
        "SFT first conv weights",
        lambda k, s: k.startswith("condition_") and k.endswith("weight"),
        Noise(0.0, per_fan_in(1.0)),
    ),
    (
        "SFT scale output bias (scale near 1)",
        lambda k, s: k.startswith("condition_scale.") and _sft_last_conv(k),
        Noise(1.0, 0.1),
    ),
    ("other SFT biases", lambda k, s: k.startswith("condition_"), Noise(0.0, 0.05)),
    ("style-code linear bias", lambda k, s: k == "final_linear.bias", Noise(0.0, 0.1)),
    ("plain conv / linear weights", lambda k, s: k.endswith(".weight"), Noise(0.0, per_fan_in(1.0))),
    ("plain conv biases", lambda k, s: k.endswith(".bias"), Noise(0.0, 0.05)),
)


def init_for(key: str, shape: tuple[int, ...]) -> Noise:
    """The initialisation rule of one tensor."""
    rules = DECODER_RULES if key.startswith("stylegan_decoder.") else UNET_RULES
    for _, applies, init in rules:
        if applies(key, shape):
            return init
    raise KeyError(f"no initialisation rule for GFPGAN key {key}")


def make_arrays(table: Path = TABLE, seed: int = SEED) -> dict[str, np.ndarray]:
    """The synthetic state dict as float32 numpy arrays, in the table's (official) key order."""
    state = {}
    for key, shape, dtype, _kind in read_table(table):
        if dtype != "float32":
            raise TypeError(f"{key}: table says {dtype}, only float32 is made")
        init = init_for(key, shape)
        z = standard_values(STREAM_PREFIX + key, math.prod(shape), seed)
        state[key] = np.ascontiguousarray((init.offset + init.scale_for(shape) * z).astype("<f4").reshape(shape))
    return state


def make_state_dict(table: Path = TABLE, seed: int = SEED) -> dict:
    """The synthetic state dict as torch tensors (what the released file holds under 'params_ema')."""
    import torch

    return {k: torch.from_numpy(v) for k, v in make_arrays(table, seed).items()}


def sha256_checksums(state: dict) -> tuple[str, dict[str, str]]:
    """(total, per tensor): sha256 of each tensor's little-endian float32 bytes; the total hashes
    key, NUL, JSON shape, NUL, bytes of every tensor in order."""
    per, total = {}, hashlib.sha256()
    for key, value in state.items():
        array = np.ascontiguousarray(np.asarray(value), dtype="<f4")
        raw = array.tobytes()
        per[key] = hashlib.sha256(raw).hexdigest()
        total.update(key.encode() + b"\0" + json.dumps(list(array.shape)).encode() + b"\0" + raw)
    return total.hexdigest(), per


def checksum_mismatches(total: str, per: dict[str, str], path: Path = CHECKSUMS, seed: int = SEED) -> list[str]:
    """Differences from the reference checksums of `seed`: key-set differences, tensor hashes, total."""
    reference = json.loads(Path(path).read_text())["seeds"][str(seed)]
    expected = reference["tensors"]
    problems = [f"missing {k}" for k in expected.keys() - per.keys()]
    problems += [f"unexpected {k}" for k in per.keys() - expected.keys()]
    problems += [f"{k}: sha256 differs" for k in per if k in expected and per[k] != expected[k]]
    if reference["total"] != total:
        problems.append("total sha256 differs (order, shapes or values)")
    return problems


def write_checkpoint(out_dir: Path, table: Path = TABLE, seed: int = SEED) -> tuple[Path, str, dict[str, str]]:
    """Write {'params_ema': state_dict} into `out_dir`; return (path, total sha256, per-tensor sha256)."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = make_state_dict(table, seed)
    total, per = sha256_checksums(state)
    path = out_dir / FILENAME.format(seed=seed)
    torch.save({TOP_KEY: state}, path)
    return path, total, per


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the .pth file")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--check", action="store_true", help=f"verify against {CHECKSUMS.name}")
    args = parser.parse_args(argv)

    path, total, per = write_checkpoint(args.out, args.table, args.seed)
    print(f"{path}: {len(per)} tensors, sha256 {total}")
    if not args.check:
        return 0
    problems = checksum_mismatches(total, per, seed=args.seed)
    for problem in problems[:20]:
        print(f"MISMATCH {problem}")
    print("checksums OK" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
