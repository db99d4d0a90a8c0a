"""S2D: sparse landmark displacements -> dense per-vertex (fine) displacements (the FMR's second half).

A multi-branch Transformer decoder: each branch embeds the landmark displacements as queries,
attends over time within its own span, and cross-attends to the hierarchical speech features of
the same frame; an attention-based fusion (a softmax over the branches' scores, per frame) mixes
the branches before a linear head spreads the motion over every vertex. Ours, where the paper
leaves it open: the number of branches (3) and their spans (the i-th branch sees 4^i frames on
each side; the last branch sees the whole clip).
"""

import torch
from torch import nn

from .cmg import zero_linear
from .config import HiSTalkConfig
from .encoding import PeriodicPositionalEncoding, alignment_mask, window_mask


class SparseToDense(nn.Module):
    def __init__(self, cfg: HiSTalkConfig):
        super().__init__()
        d = cfg.d_model
        self.embed = nn.Linear(cfg.num_landmarks * 3, d)
        self.position = PeriodicPositionalEncoding(d, cfg.period)
        self.branches = nn.ModuleList(
            nn.TransformerDecoder(
                nn.TransformerDecoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True), cfg.s2d_layers
            )
            for _ in range(cfg.s2d_branches)
        )
        self.spans = [4**i if i < cfg.s2d_branches - 1 else None for i in range(cfg.s2d_branches)]
        self.score = nn.Linear(d, 1)
        self.head = zero_linear(d, cfg.num_vertices * 3)

    def forward(self, landmarks: torch.Tensor, speech: torch.Tensor) -> torch.Tensor:
        """landmarks (B, T, L*3), speech features (B, T, D) -> fine displacements (B, T, V*3)."""
        t, device = landmarks.shape[1], landmarks.device
        query = self.position(self.embed(landmarks))
        aligned = alignment_mask(t, device)
        outputs = torch.stack(
            [
                branch(
                    query, speech, tgt_mask=None if span is None else window_mask(t, span, device), memory_mask=aligned
                )
                for branch, span in zip(self.branches, self.spans)
            ],
            dim=2,
        )
        weights = torch.softmax(self.score(outputs), dim=2)
        return self.head((weights * outputs).sum(dim=2))
