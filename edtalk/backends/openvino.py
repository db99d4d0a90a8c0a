"""The generator's per-frame networks (encoder, decoder) exported to OpenVINO and compiled for the CPU.

Each network is exported once per weights and input shapes (static shapes: the encoder at batch 1,
the decoder at the render batch, against 1 or `batch` source encodings) to an IR file in the cache
folder, and compiled with OpenVINO's model cache there, so a second run neither exports nor
compiles again. A last batch smaller than the render batch is padded to it (its last frame
repeated), so that a clip runs on one compiled decoder. The motion-bank maths (coefficient heads,
QR basis, latents) and the EEM preparation of a source stay in PyTorch float32.

Precision: fp32 runs every node in float32. bf16 (only where the CPU computes bf16 natively;
elsewhere OpenVINO runs float32 and the backend reports fp32) lowers the convolutions and matrix
products, while the flow fields, the warp (GridSample), the mask and the RGB accumulation are marked
to keep their float32 precision (`keep_warp_in_fp32`), as in the PyTorch path.
"""

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from torch import nn

import networks
from networks import Generator
from networks.generator import SourceEncoding

from ..motion_template import fingerprint, motion_fingerprint

log = logging.getLogger(__name__)

HINTS = {torch.float32: "f32", torch.bfloat16: "bf16"}
KEEP_FP32 = "precise_0"  # OpenVINO's runtime-info key that keeps a node in its original precision
STOP_TYPES = {"Convolution", "MatMul", "Parameter", "Constant"}  # where the float32 marking stops
# the code that shapes the exported graphs: a change to it invalidates the cached exports
GRAPH_SOURCES = [Path(__file__), *(Path(networks.__file__).parent / f for f in ("layers.py", "decoder.py", "eem.py"))]


def default_cache_dir() -> Path:
    """~/.cache/edtalk/openvino (or under $XDG_CACHE_HOME)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edtalk" / "openvino"


def to_images(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] (the networks' input scaling)."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1


def to_frames(images: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8, clamped and rounded."""
    return np.rint((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def keep_warp_in_fp32(model: ov.Model) -> int:
    """Mark the flow, mask, warp and RGB nodes of an exported decoder to stay float32 under a bf16
    inference precision: every node from a GridSample, a Sigmoid (the mask) or the output back to
    the nearest convolution or matrix product. Returns the number of nodes marked."""
    starts = [n for n in model.get_ordered_ops() if n.get_type_name() in ("GridSample", "Sigmoid", "Result")]
    marked, stack = set(), list(starts)
    while stack:
        node = stack.pop()
        if node.get_friendly_name() in marked or node.get_type_name() in STOP_TYPES:
            continue
        marked.add(node.get_friendly_name())
        node.get_rt_info()[KEEP_FP32] = ""
        stack.extend(port.get_source_output().get_node() for port in node.inputs())
    return len(marked)


class _Encoder(nn.Module):
    """images (B, 3, 256, 256) -> (wa (B, 512), feats coarse to fine)."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.enc = generator.enc

    def forward(self, images):
        wa, feats = self.enc(images)
        return (wa, *feats)


class _Decoder(nn.Module):
    """(latent[, exp_latent], *feats[, *eem]) -> (B, 3, 256, 256): the decoder against given source features."""

    def __init__(self, generator: Generator, levels: int):
        super().__init__()
        self.dec, self.levels, self.expression = generator.dec, levels, generator.has_expression

    def forward(self, latent, *rest):
        if not self.expression:
            return self.dec(latent, list(rest))
        exp_latent, rest = rest[0], rest[1:]
        return self.dec(latent, list(rest[: self.levels]), exp_latent, list(rest[self.levels :]))


class OpenVINOGenerator:
    """A `networks.Generator` (on the CPU) whose encoder and decoder run as compiled OpenVINO models;
    the interface of edtalk/torch_backend.GeneratorBackend."""

    name = "openvino"

    def __init__(
        self,
        generator: Generator,
        model: str,
        precision: torch.dtype,
        cache_dir: str | Path | None = None,
        batch_size: int = 1,
    ):
        self.generator = generator.cpu().eval()
        self.config = generator.config
        self.model = model
        self.device = torch.device("cpu")
        self._hint = HINTS.get(precision, "f32")
        self.precision = precision
        self.batch_size = batch_size
        self._core = ov.Core()
        self._folder = Path(cache_dir) if cache_dir else default_cache_dir()
        self._requests = {}
        self._fingerprint = None
        self._stamp = None

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the weights that turn frames into coefficients (encoder and motion heads)."""
        if self._fingerprint is None:
            self._fingerprint = motion_fingerprint(self.generator)
        return self._fingerprint

    @staticmethod
    def _key(part: str, examples: list[torch.Tensor]) -> tuple:
        return part, tuple(tuple(x.shape) for x in examples)

    def _request(self, part: str, examples: list[torch.Tensor]) -> ov.InferRequest:
        """An inference request of the `part` network ('encoder' or 'decoder') compiled for the shapes
        of `examples`, exported and compiled on first use (then read from the cache folder)."""
        key = self._key(part, examples)
        if key in self._requests:
            return self._requests[key]
        xml = self._export(part, examples)
        config = {
            "INFERENCE_PRECISION_HINT": self._hint,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "CACHE_DIR": str(self._folder / "compiled"),
        }
        compiled = self._core.compile_model(str(xml), "CPU", config)
        if self._hint != "f32" and str(compiled.get_property("INFERENCE_PRECISION_HINT")) != "<Type: 'bfloat16'>":
            log.warning("this CPU computes no bf16 natively: OpenVINO runs the generator in fp32")
            self._hint, self.precision = "f32", torch.float32
        request = compiled.create_infer_request()
        self._requests[key] = request
        return request

    def _export(self, part: str, examples: list[torch.Tensor]) -> Path:
        """The IR file of `part` for the shapes of `examples` (exported now if not cached)."""
        if self._stamp is None:
            digest = hashlib.sha256(ov.__version__.encode())
            for path in GRAPH_SOURCES:
                digest.update(path.read_bytes())
            gen = self.generator
            self._stamp = f"{fingerprint([gen.enc, gen.dec])}-{digest.hexdigest()[:8]}"
        shape = "_".join("x".join(map(str, x.shape)) for x in examples[:3])
        xml = self._folder / self._stamp / f"{part}-{len(examples)}-{shape}.xml"
        if xml.is_file():
            return xml
        log.info("exporting the %s to OpenVINO (once for these shapes; cached in %s)", part, xml.parent)
        levels = len(self.generator.dec.to_flows)
        module = _Encoder(self.generator) if part == "encoder" else _Decoder(self.generator, levels)
        with torch.no_grad(), warnings.catch_warnings():
            # the layers branch on shapes only, and every shape gets an export of its own
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            module(*examples)  # fills the layers' weight caches, so that every trace sees the same graph
            exported = ov.convert_model(module, example_input=tuple(examples))
        if part == "decoder":
            keep_warp_in_fp32(exported)
        xml.parent.mkdir(parents=True, exist_ok=True)
        partial = xml.with_name(f"{xml.stem}.{os.getpid()}.xml")
        ov.save_model(exported, partial, compress_to_fp16=False)
        partial.with_suffix(".bin").replace(xml.with_suffix(".bin"))
        partial.replace(xml)
        return xml

    def encode_images(self, images: np.ndarray) -> list[torch.Tensor]:
        """(N, 3, 256, 256) float32 -> [wa (N, 512), *feats] (one batch-1 encoder pass per image)."""
        outputs = []
        for image in images:
            x = torch.from_numpy(image[None])
            request = self._request("encoder", [x])
            request.infer([x.numpy()])
            outputs.append([torch.from_numpy(t.data.copy()) for t in request.output_tensors])
        return [torch.cat(parts) for parts in zip(*outputs)]

    def encode_source(self, crops: np.ndarray) -> SourceEncoding:
        """A `SourceEncoding` of (N, 256, 256, 3) uint8 crops (the EEM part prepared in PyTorch)."""
        wa, *feats = self.encode_images(to_images(crops))
        with torch.inference_mode():
            eem = self.generator.dec.prepare_eem(feats)
        return SourceEncoding(wa=wa, feats=feats, eem=None if eem is None else [e.contiguous() for e in eem])

    def animate(self, encoded: SourceEncoding, lip: torch.Tensor, pose, exp) -> np.ndarray:
        """(B, S, S, 3) uint8 frames of the encoded source(s) moved by the coefficients."""
        return to_frames(self.render(encoded, lip, pose, exp).numpy())

    def render(self, encoded: SourceEncoding, lip: torch.Tensor, pose, exp) -> torch.Tensor:
        """(B, 3, S, S) float32 images in [-1, 1] scale of the encoded source(s) moved by the
        coefficients (see Generator.animate); the decoder runs at batch B against 1 or B encodings,
        B below `batch_size` padded to it."""
        with torch.inference_mode():
            latent, exp_latent = self.generator.latents(encoded, lip.float(), pose, exp)
        latents = [latent] + ([exp_latent] if exp_latent is not None else [])
        source = encoded.feats + (encoded.eem or [])
        n = len(latent)
        if n < self.batch_size:
            latents = [self._pad(x) for x in latents]
            padded = [self._pad(x) for x in source]
            # one encoding per frame (a video source) is padded too; at n = 1 that is ambiguous with one
            # shared encoding: the shape compiled already decides
            if len(encoded.wa) == n and (n > 1 or self._key("decoder", latents + padded) in self._requests):
                source = padded
        inputs = latents + source
        request = self._request("decoder", inputs)
        request.infer([x.contiguous().numpy() for x in inputs])
        return torch.from_numpy(request.get_output_tensor(0).data[:n].copy())

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """(n, ...) -> (batch_size, ...): the last row repeated."""
        return torch.cat([x, x[-1:].expand(self.batch_size - len(x), *x.shape[1:])])

    def motion(self, crops: np.ndarray, parts) -> dict[str, torch.Tensor]:
        """{part: (N, dim)} motion coefficients of (N, 256, 256, 3) uint8 face crops."""
        h = self.encode_images(to_images(crops))[0]
        with torch.inference_mode():
            return {part: self.generator.coefficients(h, part) for part in parts}
