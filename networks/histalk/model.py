"""HiSTalk: speech -> animated 3D face mesh (template + coarse + fine displacements).

    speech --encoder--> features --CMG(style)--> coarse dense displacements
                                 --HSF2S-------> sparse landmark displacements --S2D--> fine dense displacements
    vertices = template + coarse + fine

Landmarks are read off a mesh as barycentric combinations of three vertices each: FLAME's 68
landmarks through its embedding (VOCASET), or fixed vertex indices (weights 1, 0, 0) chosen once
per topology (BIWI, custom meshes). Both are buffers, so they travel in the state dict.
"""

import torch
from torch import nn

from .audio import MelEncoder
from .cmg import CoarseMotionGenerator
from .config import HiSTalkConfig
from .hsf2s import HierarchicalSpeechToSparse
from .s2d import SparseToDense


class HiSTalk(nn.Module):
    def __init__(
        self,
        cfg: HiSTalkConfig,
        landmark_vertices: torch.Tensor,
        landmark_weights: torch.Tensor,
        speech_encoder: nn.Module | None = None,
    ):
        """landmark_vertices (L, 3) vertex indices and landmark_weights (L, 3) barycentric weights;
        speech_encoder: a Wav2Vec2Features for cfg.audio_encoder 'wav2vec2' (the mel encoder is built here)."""
        super().__init__()
        self.cfg = cfg
        self.encoder = MelEncoder(cfg.num_mels, cfg.d_model) if speech_encoder is None else speech_encoder
        self.cmg = CoarseMotionGenerator(cfg)
        self.hsf2s = HierarchicalSpeechToSparse(cfg)
        self.s2d = SparseToDense(cfg)
        self.register_buffer("landmark_vertices", landmark_vertices.long().reshape(-1, 3))
        self.register_buffer("landmark_weights", landmark_weights.float().reshape(-1, 3))

    def landmarks(self, mesh: torch.Tensor) -> torch.Tensor:
        """Landmark positions (or displacements) of meshes: (..., V*3) -> (..., L*3)."""
        points = mesh.unflatten(-1, (-1, 3))[..., self.landmark_vertices, :]  # (..., L, 3, 3)
        return (points * self.landmark_weights[..., None]).sum(dim=-2).flatten(-2)

    def forward(self, audio: torch.Tensor, frames: int, template: torch.Tensor, style: torch.Tensor) -> dict:
        """audio: (B, samples) for wav2vec 2.0 or (B, M, mels) for the mel encoder; template (B, V*3);
        style one-hot (B, S). Returns vertices, coarse, fine (B, T, V*3) and landmarks (B, T, L*3)."""
        speech = self.encoder(audio, frames)
        coarse, _ = self.cmg(speech, style)
        landmarks, fused = self.hsf2s(speech)
        fine = self.s2d(landmarks, fused)
        vertices = template[:, None] + coarse + fine
        return {"vertices": vertices, "coarse": coarse, "fine": fine, "landmarks": landmarks}


def histalk_losses(model: HiSTalk, out: dict, target: torch.Tensor, template: torch.Tensor) -> dict:
    """Unweighted losses against target vertices (B, T, V*3): 'vertex' (MSE of the final mesh),
    'landmark' (MSE of the sparse landmark displacements against the target's) and 'velocity' (MSE
    of the frame-to-frame motion). The three terms are the paper's; their weights are ours (the
    stage's defaults)."""
    target_motion = target - template[:, None]
    vel = out["vertices"][:, 1:] - out["vertices"][:, :-1]
    target_vel = target[:, 1:] - target[:, :-1]
    return {
        "vertex": (out["vertices"] - target).square().mean(),
        "landmark": (out["landmarks"] - model.landmarks(target_motion)).square().mean(),
        "velocity": (vel - target_vel).square().mean(),
    }
