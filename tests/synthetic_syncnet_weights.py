"""Deterministic synthetic (untrained) SyncNet v2 weights, tensor for tensor those of the SyncNet fixture.

The fixture `tests/fixtures/syncnet/syncnet_ref.npz` is the official `evaluate()` run on synthetic
weights (seed 20250301); this module rebuilds them from the key table `SyncNet_state_dict.tsv`, with
the same counter-based stream as our other generators (`synthetic_weights.standard_values`, stream
name "syncnet_v2/<key>"), and `checksum_mismatches` compares them with `weights_checksums.json`.

Per key, value = float32(offset + scale * z):

* conv / linear weights: He scale sqrt(2 / fan_in); the last Linear of each head uses gain 1;
* the first audio conv: each filter made zero-mean, scale / 16 (raw MFCCs reach about +-90);
* the first lip conv: the 5 temporal taps made to sum to zero, scale / 64 (raw 0..255 pixels);
  both means are summed left to right, so they are the same bits everywhere;
* biases 0.05 z, except the last Linear bias of both heads: one shared stream "netfc.3.bias", scale 5;
* BatchNorm weight 1 + 0.1 z, bias 0.1 z, running mean 0.1 z, running variance 1 + 0.1 z.

Command line: ``python tests/synthetic_syncnet_weights.py --out DIR [--zip] [--with-counters]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

try:
    from .synthetic_weights import standard_values
except ImportError:  # run as a script
    from synthetic_weights import standard_values

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "syncnet"
TABLE = FIXTURES / "SyncNet_state_dict.tsv"
CHECKSUMS = FIXTURES / "weights_checksums.json"
SEED = 20250301
FILENAME = "syncnet_v2.model"

SHARED_BIAS_STREAM = "netfc.3.bias"
SHARED_BIAS_KEYS = ("netfcaud.3.bias", "netfclip.3.bias")
FINAL_LINEARS = ("netfcaud.3.weight", "netfclip.3.weight")
INPUT_SCALE = {"netcnnaud.0.weight": 16.0, "netcnnlip.0.weight": 64.0}
BATCHNORM_LEAVES = {"weight": (1.0, 0.1), "bias": (0.0, 0.1), "running_mean": (0.0, 0.1), "running_var": (1.0, 0.1)}


def read_table(path: Path = TABLE) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) rows of the state-dict table, in file order."""
    lines = path.read_text().splitlines()[1:]
    return [(k, tuple(json.loads(s))) for k, s, _, _ in (line.split("\t") for line in lines if line.strip())]


def _is_batchnorm(key: str, table: dict) -> bool:
    prefix = key.rsplit(".", 1)[0]
    return f"{prefix}.running_mean" in table


def _left_to_right_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean along `axis` summed strictly in order (no pairwise summation), keeping the axis."""
    moved = np.moveaxis(values, axis, 0)
    total = moved[0].copy()
    for part in moved[1:]:
        total = total + part
    return np.expand_dims(total / moved.shape[0], axis)


def make_array(key: str, shape: tuple[int, ...], table: dict, seed: int = SEED) -> np.ndarray:
    """The float32 value of one state-dict entry."""
    leaf = key.rsplit(".", 1)[1]
    if _is_batchnorm(key, table):
        offset, scale = BATCHNORM_LEAVES[leaf]
    elif key in SHARED_BIAS_KEYS:
        offset, scale = 0.0, 5.0
    elif leaf == "bias":
        offset, scale = 0.0, 0.05
    else:
        gain = 1.0 if key in FINAL_LINEARS else math.sqrt(2.0)
        offset, scale = 0.0, gain / math.sqrt(int(np.prod(shape[1:]))) / INPUT_SCALE.get(key, 1.0)
    stream = SHARED_BIAS_STREAM if key in SHARED_BIAS_KEYS else key
    z = standard_values(f"syncnet_v2/{stream}", int(np.prod(shape)), seed).reshape(shape)
    if key == "netcnnaud.0.weight":  # zero-mean filters: blind to a constant MFCC level
        flat = z.reshape(shape[0], -1)
        z = (flat - _left_to_right_mean(flat, 1)).reshape(shape)
    if key == "netcnnlip.0.weight":  # temporal taps sum to zero: sees change between frames
        z = z - _left_to_right_mean(z, 2)
    return np.ascontiguousarray((offset + scale * z).astype(np.float32))


def make_state_dict(seed: int = SEED, with_counters: bool = False) -> dict[str, torch.Tensor]:
    """The synthetic `syncnet_v2.model` state dict (88 float32 tensors; + 14 int64 zero counters)."""
    rows = read_table()
    table = dict(rows)
    state = {key: torch.from_numpy(make_array(key, shape, table, seed)) for key, shape in rows}
    if with_counters:
        for key in [k for k in table if k.endswith(".running_mean")]:
            state[key.replace("running_mean", "num_batches_tracked")] = torch.tensor(0, dtype=torch.int64)
    return state


def _sha256(tensor: torch.Tensor) -> str:
    array = tensor.contiguous().numpy()
    return hashlib.sha256(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()


def checksum_mismatches(state: dict[str, torch.Tensor], seed: int = SEED) -> list[str]:
    """Keys whose values (or whose whole-state digest) differ from `weights_checksums.json`; [] if equal."""
    reference = json.loads(CHECKSUMS.read_text())["seeds"][str(seed)]
    tensors = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    per = {k: _sha256(v) for k, v in tensors.items()}
    bad = sorted(
        k for k in set(per) | set(reference["tensors"]) if per.get(k) != reference["tensors"].get(k, {}).get("sha256")
    )
    lines = "".join(f"{k}\t{list(tensors[k].shape)}\t{str(tensors[k].dtype)[6:]}\t{per[k]}\n" for k in sorted(per))
    if not bad and hashlib.sha256(lines.encode()).hexdigest() != reference["state_sha256_without_counters"]:
        bad.append("<whole state digest>")
    return bad


def write_weights(out_dir: Path, seed: int = SEED, zip_format: bool = False, with_counters: bool = False) -> Path:
    """Write `out_dir/syncnet_v2.model` (legacy serialisation unless `zip_format`, as the 2019 release)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILENAME
    torch.save(make_state_dict(seed, with_counters), path, _use_new_zipfile_serialization=zip_format)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder; writes <out>/syncnet_v2.model")
    parser.add_argument("--zip", action="store_true", help="current zip serialisation instead of the legacy one")
    parser.add_argument("--with-counters", action="store_true", help="add BatchNorm num_batches_tracked (int64 0)")
    args = parser.parse_args(argv)
    path = write_weights(args.out, SEED, args.zip, args.with_counters)
    bad = checksum_mismatches(make_state_dict(SEED))
    print(f"{path}: " + ("checksums OK" if not bad else f"{len(bad)} checksum mismatches, first {bad[0]}"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
