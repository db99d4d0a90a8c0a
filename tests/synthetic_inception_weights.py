"""Deterministic synthetic (untrained) weights in the layout of pytorch-fid's `pt_inception-2015-12-05` file.

The fixture `tests/fixtures/inception/inception_ref.npz` holds pytorch-fid's own `InceptionV3`
(pool3 block, FID weights layout) run on these weights; our `networks/inception.py` must give the
same features. Values come from `synthetic_weights.standard_values` (stream "pt_inception/<key>",
seed 20261205), numpy only, so they are the same bits on any platform:

* conv weights: He scale sqrt(2 / fan_in); the classifier `fc` 0.01 z, its bias 0;
* BatchNorm weight 1 + 0.1 z, bias 0.1 z, running mean 0.1 z, running variance 1 + 0.1 z.

`make_state_dict(shapes)` takes {key: shape}: pytorch-fid's model in the scratch environment and
FIDInceptionV3 here have the same keys (BatchNorm counters are left out, as in the released file).
"""

from __future__ import annotations

import math

import numpy as np

try:
    from .synthetic_weights import standard_values
except ImportError:  # imported from the scratch environment with this folder on sys.path
    from synthetic_weights import standard_values

SEED = 20261205
BATCHNORM_LEAVES = {"weight": (1.0, 0.1), "bias": (0.0, 0.1), "running_mean": (0.0, 0.1), "running_var": (1.0, 0.1)}


def _offset_and_scale(key: str, shape: tuple[int, ...]) -> tuple[float, float]:
    leaf = key.rsplit(".", 1)[1]
    if ".bn." in key:
        return BATCHNORM_LEAVES[leaf]
    if key == "fc.weight":
        return 0.0, 0.01
    if key == "fc.bias":
        return 0.0, 0.0
    return 0.0, math.sqrt(2.0 / math.prod(shape[1:]))  # conv weight, He scale


def make_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """{key: shape} of the Inception layout -> {key: float32 array}, counters (num_batches_tracked) left out."""
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            continue
        offset, scale = _offset_and_scale(key, tuple(shape))
        z = standard_values(f"pt_inception/{key}", math.prod(shape), SEED)
        out[key] = (offset + scale * z).astype(np.float32).reshape(shape)
    return out
