"""EDTalk generators: the full model (mouth 20, pose 6, expression 10) and the lip-pose model (20, 6).

Attribute names (`enc`, `dec`, `direction_lipnonlip`, `direction_exp`, `fc`, `lip_fc`, `pose_fc`,
`exp_fc`) are the official checkpoint schema.

Images are (B, 3, size, size) RGB in [-1, 1]. Motion coefficients ("alpha" in the paper) are
(B, 20) mouth, (B, 6) pose, (B, 10) expression. The latent given to the decoder is
wa + sum_k alpha_k Q_k, where wa is the source's encoder code and Q the orthonormalised banks.
"""

from dataclasses import dataclass

import torch
from torch import nn

from .bank import Direction, combine, orthonormal_basis
from .decoder import Synthesis
from .encoder import Encoder
from .layers import EqualLinear, ParameterCache, channels_last

PARTS = ("lip", "pose", "exp")


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes of a generator; `exp_dim` = 0 is the lip-pose model (no expression bank, no EEM)."""

    size: int = 256  # image side
    style_dim: int = 512  # latent code size
    lip_dim: int = 20  # mouth bases
    pose_dim: int = 6  # head-pose bases
    exp_dim: int = 10  # expression bases; 0 for the lip-pose model
    channel_divisor: int = 1  # every encoder and decoder width divided by this (1: official; tests use narrow ones)

    @property
    def has_expression(self) -> bool:
        return self.exp_dim > 0

    @property
    def num_bases(self) -> int:
        return self.lip_dim + self.pose_dim + self.exp_dim


EDTALK = GeneratorConfig()
LIP_POSE = GeneratorConfig(exp_dim=0)


@dataclass
class SourceEncoding:
    """Everything the generator needs from the identity source, computed once per source.

    wa: (1 or B, style_dim) encoder code; feats: encoder features coarse to fine (batch 1 or B);
    eem: the expression-independent part of each EEM (full model only, else None).
    """

    wa: torch.Tensor
    feats: list[torch.Tensor]
    eem: list[torch.Tensor] | None

    @property
    def batch(self) -> int:
        return self.wa.shape[0]

    def select(self, index: torch.Tensor) -> "SourceEncoding":
        """The sources at `index` (a 1-D LongTensor of batch positions, repeats allowed), e.g. to
        render several frames of each source in one batched decoder call."""
        eem = None if self.eem is None else [e[index] for e in self.eem]
        return SourceEncoding(wa=self.wa[index], feats=[f[index] for f in self.feats], eem=eem)


def _motion_mlp(style_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    """Affine EqualLinear stack, no nonlinearity (as in the official heads)."""
    dims = [style_dim] * layers + [out_dim]
    return nn.Sequential(*(EqualLinear(a, b) for a, b in zip(dims[:-1], dims[1:])))


class Generator(nn.Module):
    """The EDTalk generator; `config` selects the full or the lip-pose layout."""

    def __init__(self, config: GeneratorConfig = EDTALK):
        super().__init__()
        self.config = config
        c = config
        self.enc = Encoder(c.size, c.style_dim, c.channel_divisor)
        self.dec = Synthesis(c.size, c.style_dim, c.has_expression, c.channel_divisor)
        self.direction_lipnonlip = Direction(c.lip_dim + c.pose_dim, c.style_dim)
        self.fc = nn.Sequential(*(EqualLinear(c.style_dim, c.style_dim) for _ in range(4)))
        self.lip_fc = _motion_mlp(c.style_dim, c.lip_dim, 3)
        self.pose_fc = _motion_mlp(c.style_dim, c.pose_dim, 3)
        if c.has_expression:
            self.direction_exp = Direction(c.exp_dim, c.style_dim)
            self.exp_fc = _motion_mlp(c.style_dim, c.exp_dim, 3)
        self._basis = ParameterCache()

    @property
    def has_expression(self) -> bool:
        return self.config.has_expression

    @torch.no_grad()
    def init_expression_identity(self) -> None:
        """Initialise the expression parts (full model) so that the generator renders exactly what
        the lip-pose generator with the same shared weights (enc, fc, lip_fc, pose_fc,
        direction_lipnonlip, dec) renders, for any input, yet every expression parameter can learn.

        The expression acts twice: through alpha_exp = exp_fc(fc(h)) times the expression bases
        inside the latent, and through the expression latent e that conditions the EEM blocks.
        The last layer of exp_fc is zeroed, so alpha_exp = 0 and e = 0; the joint QR of
        [mouth | pose | expression] keeps its first 26 columns equal to the QR of the lip-pose bank
        alone (Householder QR: column k of Q depends on columns <= k only), so the latent is the
        lip-pose one. Each EEM becomes an identity (`EEM.init_identity`). Gradients still reach
        exp_fc (through the latent), gamma and beta of every EEM; direction_exp and the EEMs'
        shared MLPs receive theirs once alpha_exp and gamma/beta have moved away from 0.
        """
        if not self.has_expression:
            raise ValueError("init_expression_identity needs the full generator (exp_dim > 0)")
        last = self.exp_fc[-1]
        last.weight.zero_()
        last.bias.zero_()
        for block in self.dec.fineadainresblock:
            block.init_identity()

    # ---- steps ---------------------------------------------------------------------------------

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, size, size) -> encoder codes h (B, style_dim)."""
        return self.enc(channels_last(images))[0]

    def encode_source(self, source: torch.Tensor) -> SourceEncoding:
        """Encode identity source image(s) (1 or B, 3, size, size) in [-1, 1] once, for reuse across frames.
        Inputs are not checked here (edtalk.inputs checks a library user's tensors)."""
        assert source.dim() == 4 and source.shape[1] == 3, f"source images must be (B, 3, H, W), got {source.shape}"
        wa, feats = self.enc(channels_last(source))
        feats = [f.float() for f in feats]  # kept in float32 (under autocast too): the decoder warps them in float32
        return SourceEncoding(wa=wa, feats=feats, eem=self.dec.prepare_eem(feats))

    def coefficients(self, h: torch.Tensor, part: str) -> torch.Tensor:
        """Motion coefficients of one part ('lip', 'pose' or 'exp') from encoder codes h (B, 512)."""
        head = {"lip": self.lip_fc, "pose": self.pose_fc, "exp": getattr(self, "exp_fc", None)}[part]
        return head(self.fc(h))

    def basis(self) -> torch.Tensor:
        """Orthonormal motion basis Q (style_dim, num_bases), float32: mouth, pose[, expression].

        Without gradients (inference) the QR is computed once and reused until the bank weights
        change; with gradients it is recomputed so that training differentiates through it.
        """
        banks = [self.direction_lipnonlip.weight]
        if self.has_expression:
            banks.append(self.direction_exp.weight)
        return self._basis.get(banks, lambda: orthonormal_basis(*banks))

    def compose_latent(self, wa: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """wa (1 or B, 512) and alpha (B, num_bases) -> latent (B, 512), expression latent (B, 512) or None."""
        per_basis = combine(alpha, self.basis())  # (B, K, 512)
        direction = per_basis.sum(dim=1)
        exp_latent = None
        if self.has_expression:
            start = self.config.lip_dim + self.config.pose_dim
            exp_latent = per_basis[:, start:].sum(dim=1).to(wa.dtype)
        return wa + direction.to(wa.dtype), exp_latent

    def part_latents(self, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
        """The motion of each part as a (B, 512) vector: {'lip', 'pose'[, 'exp']} (sum of its bases)."""
        per_basis = combine(alpha, self.basis())
        dims = {"lip": self.config.lip_dim, "pose": self.config.pose_dim, "exp": self.config.exp_dim}
        out, start = {}, 0
        for part in PARTS:
            if dims[part]:
                out[part] = per_basis[:, start : start + dims[part]].sum(dim=1)
                start += dims[part]
        return out

    def render(self, source: SourceEncoding, latent: torch.Tensor, exp_latent: torch.Tensor | None) -> torch.Tensor:
        """Decode latents (B, 512) against an encoded source -> (B, 3, size, size)."""
        return self.dec(latent, source.feats, exp_latent, source.eem)

    # ---- one call for every inference mode -------------------------------------------------------

    def animate(
        self,
        source: torch.Tensor | SourceEncoding,
        lip: torch.Tensor,
        pose: torch.Tensor | None = None,
        exp: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Animate the source; returns (B, 3, size, size) images in [-1, 1] scale (not clamped).

        source: (1 or B, 3, size, size) in [-1, 1], or a `SourceEncoding` from `encode_source`.
        lip: (B, 20) mouth coefficients (e.g. from Audio2Lip) or (B, 3, size, size) mouth frames.
        pose: (B, 3, size, size) pose frames, (B, 6) pose coefficients, or None (the source's pose).
        exp: None (lip-pose model; full model: the source's own expression), (B, 3, size, size)
            expression frames, or (1 or B, 10) expression coefficients (e.g. a predefined emotion).

        Frames given for several parts are encoded in one batched pass; passing the same tensor
        object for two parts encodes it once.
        """
        src = source if isinstance(source, SourceEncoding) else self.encode_source(source)
        return self.render(src, *self.latents(src, lip, pose, exp))

    def latents(
        self,
        source: SourceEncoding,
        lip: torch.Tensor,
        pose: torch.Tensor | None = None,
        exp: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The decoder's inputs for an encoded source moved by the drivers (as in `animate`): the
        latent (B, 512) and the expression latent (B, 512; None for the lip-pose model)."""
        assert exp is None or self.has_expression, "expression drivers need the full generator (exp_dim > 0)"
        drivers = {"lip": lip, "pose": pose, "exp": exp if self.has_expression else None}
        batch = self._batch_size(drivers, source)
        alphas = self._driver_coefficients(drivers, source, batch)
        return self.compose_latent(source.wa, torch.cat(alphas, dim=1))

    def forward(self, source: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
        """Self-reconstruction (training): every part's motion comes from `drive` (B, 3, size, size)."""
        return self.animate(source, drive, drive, drive if self.has_expression else None)

    # ---- helpers -------------------------------------------------------------------------------

    def _driver_coefficients(self, drivers: dict, src: SourceEncoding, batch: int) -> list[torch.Tensor]:
        """Coefficients (batch, dim) per part in bank order; frames of all parts go through one encoder pass."""
        dims = {"lip": self.config.lip_dim, "pose": self.config.pose_dim, "exp": self.config.exp_dim}
        parts = [p for p in PARTS if dims[p] > 0]
        frames = []  # distinct frame tensors to encode, in first-use order
        for part in parts:
            x = drivers[part]
            if x is not None and x.dim() == 4 and not any(x is f for f in frames):
                frames.append(x)
        codes = {}
        if frames:
            h = self.encode(torch.cat(frames) if len(frames) > 1 else frames[0])
            for f, chunk in zip(frames, h.split([f.shape[0] for f in frames])):
                codes[id(f)] = chunk
        alphas = []
        for part in parts:
            x = drivers[part]
            if x is None:  # the source's own motion for this part
                alpha = self.coefficients(src.wa, part)
            elif x.dim() == 4:
                alpha = self.coefficients(codes[id(x)], part)
            else:
                assert x.dim() == 2 and x.shape[1] == dims[part], f"{part}: (B, {dims[part]}) expected, got {x.shape}"
                alpha = x.to(src.wa.dtype)
            alphas.append(alpha.expand(batch, -1) if alpha.shape[0] != batch else alpha)
        return alphas

    @staticmethod
    def _batch_size(drivers: dict, src: SourceEncoding) -> int:
        """The batch B of the inputs, each of which has batch B or 1 (edtalk.inputs checks user input)."""
        sizes = {x.shape[0] for x in drivers.values() if x is not None} | {src.batch}
        sizes.discard(1)
        assert len(sizes) <= 1, f"batch sizes differ: {sorted(sizes)}"
        return max(sizes, default=1)
