"""HSF2S: hierarchical speech features -> sparse 3D landmark displacements (the FMR's first half).

SpeechFormer++'s idea applied per motion frame: attention runs inside windows whose spans follow
speech statistics, and tokens are merged (averaged) from one level to the next:
- frame level: every frame attends to frames within `frame_window` seconds (ours: 0.1 s);
- phoneme level: `phoneme_merge` seconds of frames become one token (mean phone length ~100 ms),
  which attends to its neighbouring phoneme tokens;
- word level: `word_merge` seconds become one token (mean word ~250-400 ms; ours: 0.4 s), attending
  to its neighbouring words;
- utterance level: every word token attends to the whole utterance.
Each level is brought back to the frame rate (repeated), a squeeze-and-excitation gate weighs the
four levels per clip, and a linear head predicts the landmarks' displacements. SpeechFormer++
merges with learned attention pooling; we average (ours), which is what its 'merging' does at init.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .config import HiSTalkConfig
from .encoding import window_mask

LEVELS = ("frame", "phoneme", "word", "utterance")


def _merge(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average groups of `size` tokens: (B, N, D) -> (B, ceil(N / size), D)."""
    if size <= 1:
        return x
    return F.avg_pool1d(x.transpose(1, 2), size, size, ceil_mode=True).transpose(1, 2)


def _expand(x: torch.Tensor, size: int, frames: int) -> torch.Tensor:
    """Repeat each token over the `size` frames it covers: (B, N, D) -> (B, frames, D)."""
    return x.repeat_interleave(size, dim=1)[:, :frames]


class SqueezeExcitation(nn.Module):
    """Per-clip weights of the levels from their time-averaged features: (B, L, T, D) -> (B, L, T, D)."""

    def __init__(self, levels: int, d_model: int, reduction: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(levels * d_model, d_model // reduction),
            nn.ReLU(),
            nn.Linear(d_model // reduction, levels),
            nn.Sigmoid(),
        )

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        gate = self.net(levels.mean(dim=2).flatten(1))
        return levels * gate[:, :, None, None]


class HierarchicalSpeechToSparse(nn.Module):
    def __init__(self, cfg: HiSTalkConfig):
        super().__init__()
        d = cfg.d_model
        self.frame_half = max(1, round(cfg.frame_window * cfg.fps / 2))
        self.phoneme_size = max(1, round(cfg.phoneme_merge * cfg.fps))
        self.word_size = max(1, round(cfg.word_merge / cfg.phoneme_merge))
        self.layers = nn.ModuleDict(
            {name: nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True) for name in LEVELS}
        )
        self.gate = SqueezeExcitation(len(LEVELS), d)
        self.fuse = nn.Linear(d, d)
        self.head = nn.Linear(d, cfg.num_landmarks * 3)

    def forward(self, speech: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """speech (B, T, D) -> (landmark displacements (B, T, L*3), fused features (B, T, D))."""
        t, device = speech.shape[1], speech.device
        frame = self.layers["frame"](speech, src_mask=window_mask(t, self.frame_half, device))
        phoneme = _merge(frame, self.phoneme_size)
        phoneme = self.layers["phoneme"](phoneme, src_mask=window_mask(phoneme.shape[1], 1, device))
        word = _merge(phoneme, self.word_size)
        word = self.layers["word"](word, src_mask=window_mask(word.shape[1], 1, device))
        utterance = self.layers["utterance"](word)
        span = self.phoneme_size * self.word_size
        levels = torch.stack(
            [frame, _expand(phoneme, self.phoneme_size, t), _expand(word, span, t), _expand(utterance, span, t)], dim=1
        )
        fused = self.fuse(self.gate(levels).sum(dim=1))
        return self.head(fused), fused
