"""Our module trees have exactly the official state-dict schema: keys, shapes, dtypes, kinds."""

import json

import pytest
import torch

from networks import EDTALK, LIP_POSE, Audio2Lip, Generator

from .conftest import TABLES

MODELS = {
    "EDTalk_generator": lambda: Generator(EDTALK),
    "EDTalk_lip_pose_generator": lambda: Generator(LIP_POSE),
    "Audio2Lip": Audio2Lip,
}


def read_table(name):
    rows = {}
    with open(TABLES / f"{name}_state_dict.tsv") as f:
        assert f.readline().split() == ["key", "shape", "dtype", "kind"]
        for line in f:
            if line.strip():
                key, shape, dtype, kind = line.rstrip("\n").split("\t")
                rows[key] = (json.loads(shape), dtype, kind)
    return rows


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_dict_matches_official_table(name):
    model = MODELS[name]()
    table = read_table(name)
    params = dict(model.named_parameters())
    ours = {
        k: (list(v.shape), str(v.dtype).removeprefix("torch."), "parameter" if k in params else "buffer")
        for k, v in model.state_dict().items()
    }
    assert sorted(set(table) - set(ours)) == []
    assert sorted(set(ours) - set(table)) == []
    mismatched = {k: (ours[k], table[k]) for k in table if ours[k] != tuple(table[k])}
    assert mismatched == {}


def test_blur_kernels_match_official_constants(synthetic_ckpts):
    """Kernels are computed, not loaded: they must equal the checkpoint's (sum 1 encoder, 4 decoder)."""
    state = torch.load(synthetic_ckpts / "EDTalk.pt", weights_only=True)["gen"]
    ours = Generator(EDTALK).state_dict()
    kernels = [k for k in state if k.endswith(".kernel")]
    assert len(kernels) == 30
    for key in kernels:
        torch.testing.assert_close(ours[key], state[key], rtol=0, atol=0)
