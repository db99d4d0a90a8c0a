"""Speech encoders: (B, samples) or (B, mel frames, mels) -> (B, T, D) per motion frame.

- `Wav2Vec2Features`: the paper's encoder. It wraps a `transformers` Wav2Vec2Model built by the
  caller (histalk/ loads it from a local folder; nothing is downloaded here) and resamples its
  50 Hz features linearly to the motion frame rate, as FaceFormer does.
- `MelEncoder`: ours, not the paper's. A small 1-D convolution stack over the 80-bin log-mel
  spectrogram of edtalk.audio (80 frames/s), resampled to the motion rate. It needs no pretrained
  weights, so the tests and users without wav2vec 2.0 can train.
"""

import torch
import torch.nn.functional as F
from torch import nn


def resample_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Linear resampling along time: (B, N, D) -> (B, frames, D)."""
    return F.interpolate(x.transpose(1, 2), size=frames, mode="linear", align_corners=True).transpose(1, 2)


class MelEncoder(nn.Module):
    """(B, M, num_mels) log-mel frames -> (B, T, d_model); receptive field about 0.2 s (ours)."""

    def __init__(self, num_mels: int, d_model: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(num_mels, 2 * d_model, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(2 * d_model, 2 * d_model, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(2 * d_model, d_model, 5, padding=2),
        )

    def forward(self, mel: torch.Tensor, frames: int) -> torch.Tensor:
        return resample_frames(self.net(mel.transpose(1, 2)).transpose(1, 2), frames)


class Wav2Vec2Features(nn.Module):
    """(B, samples) 16 kHz speech -> (B, T, d_model) through a wav2vec 2.0 model (its feature
    extractor frozen, as FaceFormer) and a linear projection."""

    def __init__(self, wav2vec2: nn.Module, audio_dim: int, d_model: int):
        super().__init__()
        self.wav2vec2 = wav2vec2
        self.wav2vec2.feature_extractor._freeze_parameters()
        self.project = nn.Linear(audio_dim, d_model)

    def forward(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        hidden = self.wav2vec2(wav).last_hidden_state
        return self.project(resample_frames(hidden, frames))
