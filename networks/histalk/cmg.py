"""Coarse Motion Generator (CMG): speech features + speaking style -> dense coarse displacements.

A FaceFormer-style Transformer decoder: the style one-hot is embedded and added to every query,
the periodic positional encoding orders the frames, self-attention is causal with FaceFormer's
period-wise ALiBi bias, and cross-attention follows the audio-motion alignment mask (frame t sees
audio feature t). Ours, where the paper leaves it open: the queries are the speech features
themselves, so all frames are decoded in one parallel pass (FaceFormer feeds its own previous
outputs back, one frame at a time), which keeps inference faster than real time on a CPU.
"""

import torch
from torch import nn

from .config import HiSTalkConfig
from .encoding import PeriodicPositionalEncoding, alibi_bias, alignment_mask


def zero_linear(d_in: int, d_out: int) -> nn.Linear:
    """A linear head that starts at zero output (displacements start at the template)."""
    layer = nn.Linear(d_in, d_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class CoarseMotionGenerator(nn.Module):
    def __init__(self, cfg: HiSTalkConfig):
        super().__init__()
        d = cfg.d_model
        self.heads, self.period = cfg.heads, cfg.period
        self.style = nn.Linear(cfg.num_styles, d, bias=False)
        self.position = PeriodicPositionalEncoding(d, cfg.period)
        layer = nn.TransformerDecoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.cmg_layers)
        self.head = zero_linear(d, cfg.num_vertices * 3)

    def forward(self, speech: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """speech (B, T, D), style one-hot (B, S) -> (coarse displacements (B, T, V*3), hidden (B, T, D))."""
        b, t, _ = speech.shape
        query = self.position(speech + self.style(style)[:, None])
        causal = alibi_bias(self.heads, t, self.period, speech.device).repeat(b, 1, 1)
        hidden = self.decoder(query, speech, tgt_mask=causal, memory_mask=alignment_mask(t, speech.device))
        return self.head(hidden), hidden
