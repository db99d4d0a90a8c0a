"""CUDA graphs for batch-1 decoding (edtalk/cuda_graphs.py).

Off CUDA the option is refused with one line. The capture-and-check logic runs here with a stand-in
for the captured graph (the CPU has no CUDA graphs): eager decoding for other batch sizes, one
capture per source, and eager decoding for good, with one warning, after a failed capture or a
replay that differs from the eager decoder. The capture itself is checked on a GPU by
benchmarks/gpu_check.sh (parity of a render with and without --cuda_graphs).
"""

import logging

import pytest
import torch

from edtalk import cuda_graphs
from edtalk.backends import make_backend
from edtalk.cuda_graphs import DecoderGraphs
from edtalk.errors import EDTalkError


class StandIn:
    """Replaces GraphedDecoder: 'replays' by decoding eagerly, plus `offset` (a faulty graph)."""

    captures = 0
    offset = 0.0
    error = None

    def __init__(self, decode, latent, exp_latent):
        if StandIn.error:
            raise RuntimeError(StandIn.error)
        StandIn.captures += 1
        self.decode = decode

    def __call__(self, latent, exp_latent):
        return self.decode(latent, exp_latent) + StandIn.offset


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(cuda_graphs, "GraphedDecoder", StandIn)
    monkeypatch.setattr(StandIn, "captures", 0)
    monkeypatch.setattr(StandIn, "offset", 0.0)
    monkeypatch.setattr(StandIn, "error", None)
    return StandIn


def decode(latent, exp_latent):
    return latent[:, :3, None, None].expand(-1, 3, 4, 4) * 0.5


def test_cuda_graphs_are_refused_off_cuda():
    with pytest.raises(EDTalkError, match="--cuda_graphs replays the PyTorch decoder on a CUDA GPU .* device is cpu"):
        make_backend(None, "lip_pose", torch.device("cpu"), torch.float32, name="torch", cuda_graphs=True)


def test_one_capture_per_source_and_eager_for_other_batches(stand_in):
    graphs, one, other = DecoderGraphs(), object(), object()
    latent = torch.randn(1, 512)
    for _ in range(3):
        torch.testing.assert_close(graphs.decode(decode, one, latent, None), decode(latent, None))
    assert stand_in.captures == 1
    graphs.decode(decode, other, latent, None)
    assert stand_in.captures == 2  # a new source is captured again
    batch = torch.randn(2, 512)
    torch.testing.assert_close(graphs.decode(decode, other, batch, None), decode(batch, None))
    assert stand_in.captures == 2  # batch 2 decodes eagerly


@pytest.mark.parametrize("fault", ["differs", "raises"])
def test_a_faulty_graph_turns_them_off_with_one_warning(stand_in, caplog, fault):
    if fault == "differs":
        stand_in.offset = 0.01
    else:
        stand_in.error = "operation not permitted when stream is capturing\nmore"
    graphs, latent = DecoderGraphs(), torch.randn(1, 512)
    with caplog.at_level(logging.WARNING, logger="edtalk"):
        for source in (object(), object()):
            torch.testing.assert_close(graphs.decode(decode, source, latent, None), decode(latent, None))
    (record,) = caplog.records
    reason = "differs from the eager decoder's by 0.01" if fault == "differs" else "capture failed (operation not"
    assert "CUDA graphs are off for this run" in record.message and reason in record.message
    assert stand_in.captures == (1 if fault == "differs" else 0)  # no second try
