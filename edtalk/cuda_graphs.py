"""The decoder of one source at batch 1 as a CUDA graph: a frame is one graph replay instead of the
several hundred kernel launches of the eager decoder, which bound batch-1 speed on a GPU.

PyTorch's `torch.cuda.CUDAGraph` captures the kernels; this module only keeps the static buffers a
graph needs (the latents in, the image out), captures once per source encoding (its feature maps
stay at fixed addresses while it is in use) and checks the first replay against the eager decoder:
on any difference beyond `TOLERANCE` or any error while capturing, it logs one warning and the
renderer goes on eagerly. `torch.compile(mode="reduce-overhead")` would capture as well, but it
compiles first (minutes on a cold cache) and does not know the layers' weight caches (filled at the
first call and kept as module attributes), which a capture must not allocate.
"""

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

TOLERANCE = 1e-3  # largest |graph - eager| accepted on the [-1, 1] image scale (the same kernels: ~0)
WARMUP = 2  # eager calls on a side stream before capture (weight caches, cuDNN and cuBLAS plans)

Decode = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class GraphedDecoder:
    """`decode(latent (1, 512), exp_latent (1, 512) or None) -> (1, 3, S, S)` captured as a CUDA graph.

    The output tensor is the graph's own buffer, overwritten by the next call: read it (e.g.
    convert it to uint8) before calling again.
    """

    def __init__(self, decode: Decode, latent: torch.Tensor, exp_latent: torch.Tensor | None):
        self.latent = latent.clone()
        self.exp_latent = None if exp_latent is None else exp_latent.clone()
        side = torch.cuda.Stream(latent.device)
        side.wait_stream(torch.cuda.current_stream(latent.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                decode(self.latent, self.exp_latent)
        torch.cuda.current_stream(latent.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = decode(self.latent, self.exp_latent)

    def __call__(self, latent: torch.Tensor, exp_latent: torch.Tensor | None) -> torch.Tensor:
        self.latent.copy_(latent)
        if exp_latent is not None:
            self.exp_latent.copy_(exp_latent)
        self.graph.replay()
        return self.out


class DecoderGraphs:
    """Batch-1 decoding through a `GraphedDecoder` of the current source, captured on first use and
    checked against eager decoding; eager for other batch sizes, and for good after a failed check."""

    def __init__(self):
        self.key = None  # (the SourceEncoding, whether an expression latent is given) of the graph
        self.graph: GraphedDecoder | None = None
        self.failed = False

    def decode(self, decode: Decode, source, latent: torch.Tensor, exp_latent: torch.Tensor | None) -> torch.Tensor:
        """decode(latent, exp_latent) for `source`, replayed from its graph when the batch is 1."""
        if self.failed or latent.shape[0] != 1:
            return decode(latent, exp_latent)
        key = (source, exp_latent is None)
        if self.key is None or self.key[0] is not source or self.key[1] != key[1]:
            self.graph = self._capture(decode, latent, exp_latent)
            self.key = key
            if self.graph is None:
                return decode(latent, exp_latent)
        return self.graph(latent, exp_latent)

    def _capture(self, decode: Decode, latent: torch.Tensor, exp_latent: torch.Tensor | None):
        self.graph = None  # the previous source's graph and its memory go first
        try:
            graph = GraphedDecoder(decode, latent, exp_latent)
            error = (graph(latent, exp_latent).float() - decode(latent, exp_latent).float()).abs().max().item()
        except RuntimeError as exc:
            return self._give_up(f"capture failed ({str(exc).splitlines()[0]})")
        if not error <= TOLERANCE:
            return self._give_up(f"its output differs from the eager decoder's by {error:.2g}")
        return graph

    def _give_up(self, why: str) -> None:
        log.warning("CUDA graphs are off for this run: %s; decoding eagerly", why)
        self.failed = True
        return None
