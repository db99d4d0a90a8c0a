#!/usr/bin/env python3
"""Deterministic synthetic (untrained) weights for the three official EDTalk checkpoints.

The parity fixtures in ``tests/fixtures/parity`` were produced by the official EDTalk code
running on synthetic weights. This module rebuilds exactly those weights, tensor for tensor,
from the state-dict tables in ``tests/fixtures/tables`` (columns ``key, shape, dtype, kind``),
so the tests can feed them through our own loaders and compare with the fixtures.

Random values come from a counter-based generator, never from torch/numpy RNGs (whose
streams can change between releases), so every platform gets the same bits:

* each tensor has its own 64-bit stream start
  ``start = fnv1a64("<model>/<key>") XOR (seed * golden_gamma mod 2**64)``;
* draw ``i`` of that stream is ``u_i = (splitmix64(start + i) >> 11) * 2**-53``, an exact
  uniform number in [0, 1);
* element ``j`` of the tensor uses the four draws ``4j .. 4j+3``:
  ``z_j = (((u_4j + u_4j+1) + u_4j+2) + u_4j+3 - 2) * sqrt(3)`` (Irwin-Hall of order 4, scaled
  to mean 0 and variance 1), in float64;
* the stored value is ``float32(offset + scale * z_j)`` with ``offset``/``scale`` chosen per key
  by :data:`GENERATOR_RULES` / :data:`AUDIO2LIP_RULES` below.

Fixed buffers get exact constants: the [1, 3, 3, 1] blur kernels (normalised to sum 1, times 4
for the decoder's upsampling blurs) and zero BatchNorm ``num_batches_tracked`` counters.

Files written by :func:`write_checkpoints` (official format)::

    EDTalk.pt           {'gen': state_dict}        full model (mouth + pose + expression)
    EDTalk_lip_pose.pt  {'gen': state_dict}        lip-pose model
    Audio2Lip.pt        {'audio2lip': state_dict}

Command line: ``python tests/synthetic_weights.py --out DIR [--check]``; ``--check`` compares the
per-tensor sum and sum of squares with ``tests/fixtures/parity/weights_checksums.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TABLES = HERE / "fixtures" / "tables"
CHECKSUMS = HERE / "fixtures" / "parity" / "weights_checksums.json"

SEED = 20240901
CHECKSUM_RTOL = 1e-9  # relative tolerance of the reference check (absolute below magnitude 1)

# (table name, file name, top-level key in the checkpoint)
CHECKPOINTS = (
    ("EDTalk_generator", "EDTalk.pt", "gen"),
    ("EDTalk_lip_pose_generator", "EDTalk_lip_pose.pt", "gen"),
    ("Audio2Lip", "Audio2Lip.pt", "audio2lip"),
)

_MASK64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # splitmix64 increment, also used to spread the seed
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
_CHUNK = 1 << 20  # elements per vectorised block (bounds memory for the big tensors)


# --------------------------------------------------------------------------------------------
# Random stream
# --------------------------------------------------------------------------------------------


def fnv1a64(text: str) -> int:
    """64-bit FNV-1a hash of the UTF-8 bytes of ``text``."""
    value = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return value


def _splitmix64_finalise(counter: np.ndarray) -> np.ndarray:
    """splitmix64 output for each uint64 counter (wrapping arithmetic)."""
    z = counter + np.uint64(_GOLDEN_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stream_start(name: str, seed: int = SEED) -> int:
    """First counter of the stream that belongs to ``name`` ("<model>/<key>")."""
    return fnv1a64(name) ^ ((seed * _GOLDEN_GAMMA) & _MASK64)


def standard_values(name: str, count: int, seed: int = SEED) -> np.ndarray:
    """``count`` float64 values with mean 0 and variance 1 (scaled Irwin-Hall(4)), reproducible."""
    start = np.uint64(stream_start(name, seed))
    out = np.empty(count, dtype=np.float64)
    root3 = math.sqrt(3.0)
    with np.errstate(over="ignore"):
        for first in range(0, count, _CHUNK):
            n = min(_CHUNK, count - first)
            counters = start + np.arange(4 * first, 4 * (first + n), dtype=np.uint64)
            bits = _splitmix64_finalise(counters) >> np.uint64(11)
            u = (bits.astype(np.float64) * 2.0**-53).reshape(n, 4)
            # Left-to-right sum, as specified: the order matters for the last bit.
            out[first : first + n] = (((u[:, 0] + u[:, 1]) + u[:, 2]) + u[:, 3] - 2.0) * root3
    return out


# --------------------------------------------------------------------------------------------
# Per-key initialisation rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """``offset + scale * z`` with z from the key's stream; ``scale`` may depend on the shape."""

    offset: float
    scale: float | Callable[[tuple[int, ...]], float]

    def scale_for(self, shape: tuple[int, ...]) -> float:
        return self.scale(shape) if callable(self.scale) else float(self.scale)


@dataclass(frozen=True)
class Constant:
    """A fixed value, computed from the shape."""

    make: Callable[[tuple[int, ...]], np.ndarray]


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output unit: product of all but the first dimension (or the length of a vector)."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def inv_sqrt_fan_in(gain: float) -> Callable[[tuple[int, ...]], float]:
    return lambda shape: gain / math.sqrt(fan_in(shape))


def blur_kernel(gain: float) -> np.ndarray:
    """Separable [1, 3, 3, 1] blur normalised to sum 1, times ``gain`` (float32, exact)."""
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    kernel = np.outer(taps, taps)
    return (kernel / kernel.sum() * gain).astype(np.float32)


def _is_decoder_upsampling_blur(key: str) -> bool:
    # ModulatedConv2d upsampling blur and the ToRGB/ToFlow Upsample layers of the decoder are x4.
    return key.startswith("dec.") and (".upsample." in key or ".conv.blur." in key)


# Buffers, common to every model. Each rule: (what it is, predicate(key, shape), init).
BUFFER_RULES = (
    (
        "decoder upsampling blur",
        lambda k, s: k.endswith(".kernel") and _is_decoder_upsampling_blur(k),
        Constant(lambda s: blur_kernel(4.0)),
    ),
    ("other blur kernels", lambda k, s: k.endswith(".kernel"), Constant(lambda s: blur_kernel(1.0))),
    (
        "BatchNorm step counter",
        lambda k, s: k.endswith("num_batches_tracked"),
        Constant(lambda s: np.zeros(s, dtype=np.int64)),
    ),
    ("BatchNorm running mean", lambda k, s: k.endswith("running_mean"), Noise(0.0, 0.1)),
    ("BatchNorm running variance", lambda k, s: k.endswith("running_var"), Noise(1.0, 0.1)),
)

# Parameters of Audio2Lip (plain nn.Conv2d + BatchNorm2d blocks, one nn.Linear).
AUDIO2LIP_RULES = (
    ("conv weight", lambda k, s: k.endswith("conv_block.0.weight"), Noise(0.0, inv_sqrt_fan_in(1.0))),
    ("conv bias", lambda k, s: k.endswith("conv_block.0.bias"), Noise(0.0, 0.05)),
    ("BatchNorm gamma", lambda k, s: k.endswith("conv_block.1.weight"), Noise(1.0, 0.1)),
    ("BatchNorm beta", lambda k, s: k.endswith("conv_block.1.bias"), Noise(0.0, 0.1)),
    ("mapping weight", lambda k, s: k == "mapping.weight", Noise(0.0, inv_sqrt_fan_in(2.0))),
    ("mapping bias", lambda k, s: k == "mapping.bias", Noise(0.0, 0.05)),
)

# Parameters of both generators; the first matching rule wins.
GENERATOR_RULES = (
    ("NoiseInjection weight (zero, unused)", lambda k, s: k.endswith("noise.weight"), Noise(0.0, 0.0)),
    ("style modulation bias (official init 1)", lambda k, s: k.endswith("modulation.bias"), Noise(1.0, 0.1)),
    # EEM (plain nn.Conv2d / nn.Linear). gamma bias near -0.9 keeps (1 + gamma) ~ 0.1: a small residual.
    ("EEM gamma bias", lambda k, s: ".fineadainresblock." in k and k.endswith("mlp_gamma.bias"), Noise(-0.9, 0.02)),
    (
        "EEM conv weight",
        lambda k, s: ".fineadainresblock." in k and k.endswith(".weight") and len(s) == 4,
        Noise(0.0, inv_sqrt_fan_in(0.5)),
    ),
    (
        "EEM linear weight",
        lambda k, s: ".fineadainresblock." in k and k.endswith(".weight"),
        Noise(0.0, inv_sqrt_fan_in(1.0)),
    ),
    ("EEM other", lambda k, s: ".fineadainresblock." in k, Noise(0.0, 0.02)),
    (
        "ToFlow conv weight (not demodulated)",
        lambda k, s: k.startswith("dec.to_flows.") and k.endswith("conv.weight"),
        Noise(0.0, 0.15),
    ),
    ("ToRGB conv weight", lambda k, s: k.startswith("dec.to_rgbs.") and k.endswith("conv.0.weight"), Noise(0.0, 0.3)),
    (
        "ToRGB output bias (re-centres the summed skips)",
        lambda k, s: k.startswith("dec.to_rgbs.") and k.endswith(".bias") and ".conv." not in k,
        Noise(-0.08, 0.05),
    ),
    ("other biases", lambda k, s: k.endswith("bias"), Noise(0.0, 0.1)),
    # Equalised-LR conv/linear, modulated conv weights, ConstantInput, direction banks: N(0, 1).
    ("everything else", lambda k, s: True, Noise(0.0, 1.0)),
)


def init_for(model: str, key: str, shape: tuple[int, ...], kind: str) -> Noise | Constant:
    """The initialisation rule of one tensor."""
    if kind == "buffer":
        rules = BUFFER_RULES
    elif model == "Audio2Lip":
        rules = AUDIO2LIP_RULES
    else:
        rules = GENERATOR_RULES
    for _, applies, init in rules:
        if applies(key, shape):
            return init
    raise KeyError(f"no initialisation rule for {model}/{key} ({kind})")


# --------------------------------------------------------------------------------------------
# Tables, state dicts, files
# --------------------------------------------------------------------------------------------


def read_table(path: Path) -> list[tuple[str, tuple[int, ...], str, str]]:
    """Rows ``(key, shape, dtype, kind)`` of a ``*_state_dict.tsv`` table, in file order."""
    lines = Path(path).read_text().splitlines()
    if lines[0].split("\t") != ["key", "shape", "dtype", "kind"]:
        raise ValueError(f"{path}: unexpected header {lines[0]!r}")
    rows = []
    for line in lines[1:]:
        if line.strip():
            key, shape, dtype, kind = line.split("\t")
            rows.append((key, tuple(json.loads(shape)), dtype, kind))
    return rows


def make_state_dict(model: str, tables: Path = TABLES, seed: int = SEED) -> dict:
    """The synthetic state dict of ``model`` (a table name of :data:`CHECKPOINTS`), as torch tensors."""
    return state_from_rows(model, read_table(Path(tables) / f"{model}_state_dict.tsv"), seed)


def state_from_rows(model: str, rows: list[tuple[str, tuple[int, ...], str, str]], seed: int = SEED) -> dict:
    """Tensors for table rows ``(key, shape, dtype, kind)`` of ``model``, by the rules above."""
    import torch

    state = {}
    for key, shape, dtype, kind in rows:
        init = init_for(model, key, shape, kind)
        if isinstance(init, Constant):
            array = np.asarray(init.make(shape)).reshape(shape)
        else:
            count = math.prod(shape)
            scale = init.scale_for(shape)
            z = standard_values(f"{model}/{key}", count, seed) if scale != 0.0 else np.zeros(count)
            array = (init.offset + scale * z).astype(np.float32).reshape(shape)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if str(tensor.dtype).removeprefix("torch.") != dtype:
            raise TypeError(f"{model}/{key}: made {tensor.dtype}, table says {dtype}")
        state[key] = tensor
    return state


def make_state_dicts(tables: Path = TABLES, seed: int = SEED) -> dict[str, dict]:
    """All three state dicts, keyed by table name (about 450 MB of float32 in memory)."""
    return {model: make_state_dict(model, tables, seed) for model, _, _ in CHECKPOINTS}


def checksums(state: dict) -> dict[str, tuple[float, float]]:
    """Per tensor: (sum, sum of squares), accumulated in float64."""
    out = {}
    for key, tensor in state.items():
        values = tensor.double()
        out[key] = (float(values.sum()), float((values * values).sum()))
    return out


def checksum_mismatches(model: str, sums: dict, reference: dict) -> list[str]:
    """Differences between ``sums`` (from :func:`checksums`) and ``reference[model]``: key-set
    differences and any sum / sum of squares off by more than rtol 1e-9 (absolute below 1)."""
    expected = reference[model]
    problems = [f"missing {k}" for k in expected.keys() - sums.keys()]
    problems += [f"unexpected {k}" for k in sums.keys() - expected.keys()]
    for key, got in sums.items():
        if key not in expected:
            continue
        for name, value, ref in zip(("sum", "sum of squares"), got, expected[key]):
            if abs(value - ref) > CHECKSUM_RTOL * max(1.0, abs(ref)):
                problems.append(f"{key}: {name} {value!r} != {ref!r}")
    return problems


def load_reference_checksums(path: Path = CHECKSUMS) -> dict:
    return json.loads(Path(path).read_text())["checksums"]


def write_checkpoints(out_dir: Path, tables: Path = TABLES, seed: int = SEED) -> dict[str, dict]:
    """Write EDTalk.pt, EDTalk_lip_pose.pt and Audio2Lip.pt into ``out_dir``; return their checksums.

    Models are built one at a time, so at most one state dict is held in memory.
    """
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sums = {}
    for model, filename, top_key in CHECKPOINTS:
        state = make_state_dict(model, tables, seed)
        torch.save({top_key: state}, out_dir / filename)
        sums[model] = checksums(state)
        del state
    return sums


def write_narrow_checkpoints(out_dir: Path, divisor: int, tables: Path = TABLES, seed: int = SEED) -> None:
    """EDTalk.pt and EDTalk_lip_pose.pt with every encoder and decoder width divided by ``divisor``
    (``GeneratorConfig.channel_divisor``; the same rules, our own network's keys and shapes), and
    the official-size Audio2Lip.pt, in ``out_dir``: the same files, tens of times faster to render,
    for the tests of everything around the networks."""
    import torch

    from networks import EDTALK, LIP_POSE, Generator

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layouts = {"EDTalk_generator": EDTALK, "EDTalk_lip_pose_generator": LIP_POSE}
    for model, filename, top_key in CHECKPOINTS:
        if model in layouts:
            shapes = Generator(replace(layouts[model], channel_divisor=divisor)).state_dict()
            rows = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch."), _kind(k)) for k, v in shapes.items()]
            state = state_from_rows(model, rows, seed)
        else:
            state = make_state_dict(model, tables, seed)
        torch.save({top_key: state}, out_dir / filename)


def _kind(key: str) -> str:
    """'buffer' for the blur kernels (the generators' only buffers), else 'parameter'."""
    return "buffer" if key.endswith(".kernel") else "parameter"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the three .pt files")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--tables", type=Path, default=TABLES, help="folder with the *_state_dict.tsv tables")
    parser.add_argument("--check", action="store_true", help=f"verify against {CHECKSUMS.name}")
    args = parser.parse_args(argv)

    reference = load_reference_checksums() if args.check else None
    sums = write_checkpoints(args.out, args.tables, args.seed)
    for model, filename, _ in CHECKPOINTS:
        print(f"{filename}: {len(sums[model])} tensors")
    if reference is None:
        return 0
    problems = [f"{model} {p}" for model in sums for p in checksum_mismatches(model, sums[model], reference)]
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("checksums OK" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
