"""SyncNet v2 (Chung & Zisserman 2016, joonson/syncnet_python `S`): the network behind LSE-C / LSE-D.

Two towers map 0.2 s of audio and 5 video frames to 1024-d embeddings (not normalised); lip-sync
distance is their Euclidean distance. Attribute names and `nn.Sequential` indices are the released
`syncnet_v2.model` keys (convs at 0, 4, 8, 11, 14, 18; BatchNorms at 1, 5, 9, 12, 15, 19; heads:
Linear 0, BatchNorm1d 1, Linear 3), so that file loads unchanged. Pooling uses floor mode.
"""

import torch
from torch import nn

EMBEDDING_DIM = 1024


def _audio_tower() -> nn.Sequential:
    """(N, 1, 13, 20) MFCC window -> (N, 512, 1, 1)."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(1, stride=1),  # an identity, kept for the indices: (64, 13, 20)
        nn.Conv2d(64, 192, 3, padding=1),
        nn.BatchNorm2d(192),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=(1, 2)),  # (192, 11, 9)
        nn.Conv2d(192, 384, 3, padding=1),
        nn.BatchNorm2d(384),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.BatchNorm2d(256),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.BatchNorm2d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2),  # (256, 5, 4)
        nn.Conv2d(256, 512, (5, 4)),
        nn.BatchNorm2d(512),
        nn.ReLU(inplace=True),
    )


def _lip_tower() -> nn.Sequential:
    """(N, 3, 5, 224, 224) raw 0..255 BGR frames -> (N, 512, 1, 1, 1)."""
    return nn.Sequential(
        nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)),
        nn.BatchNorm3d(96),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),  # (96, 1, 54, 54)
        nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # (256, 1, 13, 13)
        nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),  # (256, 1, 6, 6)
        nn.Conv3d(256, 512, (1, 6, 6)),
        nn.BatchNorm3d(512),
        nn.ReLU(inplace=True),
    )


def _head() -> nn.Sequential:
    """(N, 512) tower output -> (N, 1024) embedding."""
    return nn.Sequential(
        nn.Linear(512, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(inplace=True),
        nn.Linear(512, EMBEDDING_DIM),
    )


class SyncNetV2(nn.Module):
    """The two-tower SyncNet of `syncnet_v2.model`; use in eval mode (BatchNorm running statistics)."""

    def __init__(self):
        super().__init__()
        self.netcnnaud = _audio_tower()
        self.netfcaud = _head()
        self.netcnnlip = _lip_tower()
        self.netfclip = _head()

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """mfcc (N, 1, 13, 20): 13 coefficients x 20 MFCC frames (0.2 s) -> audio embedding (N, 1024)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (N, 3, 5, 224, 224) float, raw 0..255 BGR, 5 consecutive frames -> video embedding (N, 1024)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))

    def forward(self, mfcc: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both embeddings: (audio (N, 1024), video (N, 1024)) for matching windows."""
        return self.forward_aud(mfcc), self.forward_lip(frames)
