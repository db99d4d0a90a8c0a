"""The generator as the renderer sees it: a narrow interface, and its PyTorch implementation.

The pipeline reaches the generator only through `GeneratorBackend`, so another runtime (e.g. an
OpenVINO model in edtalk/backends/) can be injected in place of `TorchGenerator`:

    encode_source(crops)                  (N, 256, 256, 3) uint8 face crops -> an opaque encoding
    animate(encoded, lip, pose, exp)      coefficient tensors (B, 20), (B, 6) or None, (1 or B, 10) or
                                          None -> (B, S, S, 3) uint8 frames
    motion(crops, parts)                  (N, 256, 256, 3) uint8 -> {part: (N, dim)} coefficients
    name ('torch', 'openvino'), config, model, device, precision, fingerprint
"""

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from networks import Generator, GeneratorConfig

from .cuda_graphs import DecoderGraphs
from .device import exact_fp32
from .images import to_tensor, to_uint8
from .motion_template import motion_fingerprint


class GeneratorBackend(Protocol):
    name: str  # the runtime: 'torch' or 'openvino'
    config: GeneratorConfig
    model: str  # 'full' or 'lip_pose'
    device: torch.device  # where coefficient tensors live
    precision: torch.dtype

    @property
    def fingerprint(self) -> str: ...

    def encode_source(self, crops: np.ndarray) -> Any: ...

    def animate(
        self, encoded: Any, lip: torch.Tensor, pose: torch.Tensor | None, exp: torch.Tensor | None
    ) -> np.ndarray: ...

    def motion(self, crops: np.ndarray, parts: Sequence[str]) -> dict[str, torch.Tensor]: ...


class TorchGenerator:
    """A `networks.Generator` run on `device` in `precision` (float32: exact, no TF32; else autocast)."""

    name = "torch"

    def __init__(
        self, generator: Generator, model: str, device: torch.device, precision: torch.dtype, cuda_graphs: bool = False
    ):
        self.generator = generator
        self.config = generator.config
        self.model = model
        self.device = device
        self.precision = precision
        self.graphs = DecoderGraphs() if cuda_graphs else None
        self._fingerprint = None

    @contextlib.contextmanager
    def running(self):
        """Context for running the generator: no autograd, and autocast unless fp32 (then no TF32 either)."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.precision != torch.float32:
                # a CUDA graph must not replay casts cached by another call: no autocast cache with graphs
                cache = self.graphs is None
                stack.enter_context(torch.autocast(self.device.type, dtype=self.precision, cache_enabled=cache))
            else:
                stack.enter_context(exact_fp32(self.device))
            yield

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the weights that turn frames into coefficients (encoder and motion heads)."""
        if self._fingerprint is None:
            self._fingerprint = motion_fingerprint(self.generator)
        return self._fingerprint

    def encode_source(self, crops: np.ndarray):
        """A `SourceEncoding` of (N, 256, 256, 3) uint8 crops."""
        with self.running():
            return self.generator.encode_source(to_tensor(crops, self.device))

    def animate(self, encoded, lip: torch.Tensor, pose: torch.Tensor | None, exp: torch.Tensor | None) -> np.ndarray:
        """(B, S, S, 3) uint8 frames of the encoded source(s) moved by the coefficients."""
        with self.running():
            if self.graphs is None:
                out = self.generator.animate(encoded, lip, pose, exp)
            else:
                latent, exp_latent = self.generator.latents(encoded, lip, pose, exp)
                decode = lambda z, e: self.generator.render(encoded, z, e)  # noqa: E731
                out = self.graphs.decode(decode, encoded, latent, exp_latent)
            return to_uint8(out.float())

    def motion(self, crops: np.ndarray, parts: Sequence[str]) -> dict[str, torch.Tensor]:
        """{part: (N, dim)} motion coefficients of (N, 256, 256, 3) uint8 face crops."""
        with self.running():
            h = self.generator.encode(to_tensor(crops, self.device))
            return {part: self.generator.coefficients(h, part) for part in parts}
