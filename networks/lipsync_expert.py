"""The lip-sync expert (Wav2Lip's SyncNet_color layout) and the differentiable face crops it sees.

Trained by train/train_syncnet.py (or Wav2Lip's lipsync_expert.pth, mapped by train/wav2lip.py); used by
the audio-to-mouth stage's sync loss and by evaluation/sync.py's expert scores."""

import torch
import torch.nn.functional as F
from torch import nn

from .audio2lip import AUDIO_ENCODER_STAGES, conv_stack

# The face encoder's stages (as AUDIO_ENCODER_STAGES) over 5 stacked lower-half crops.
FACE_ENCODER_STAGES = (
    (15, 32, 7, 1, 3, 0),
    (32, 64, 5, (1, 2), 1, 2),
    (64, 128, 3, 2, 1, 3),
    (128, 256, 3, 2, 1, 2),
    (256, 512, 3, 2, 1, 2),
    (512, 512, 3, 2, 1, 0),
    (512, 512, 3, 1, 0, 0),
    (512, 512, 1, 1, 0, 0),
)
# The expert's audio encoder is Audio2Lip's with one more 256-channel residual block.
SYNC_AUDIO_STAGES = AUDIO_ENCODER_STAGES[:3] + ((128, 256, 3, (3, 2), 1, 2),) + AUDIO_ENCODER_STAGES[4:]
FACE_SIZE = 96  # face crops are 96x96; the expert sees their lower half (48x96)


class SyncNet(nn.Module):
    """forward(mel (B, 1, 80, 16), faces (B, 15, 48, 96)) -> cosine similarity (B,) in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.face_encoder = conv_stack(FACE_ENCODER_STAGES)
        self.audio_encoder = conv_stack(SYNC_AUDIO_STAGES)

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        a = F.normalize(self.audio_encoder(mel).flatten(1), dim=1)
        v = F.normalize(self.face_encoder(faces).flatten(1), dim=1)
        return (a * v).sum(dim=1)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int = FACE_SIZE) -> torch.Tensor:
    """Differentiable bilinear crops: images (B, 3, H, W), boxes (B, 4) pixels x1, y1, x2, y2 -> (B, 3, size, size)."""
    b, _, h, w = images.shape
    x1, y1, x2, y2 = boxes.unbind(1)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = (x2 - x1) / w
    theta[:, 0, 2] = (x1 + x2) / w - 1
    theta[:, 1, 1] = (y2 - y1) / h
    theta[:, 1, 2] = (y1 + y2) / h - 1
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


def lower_halves(frames: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """frames (B, T, 3, H, W) and face boxes (B, T, 4) -> the expert's input (B, 3T, 48, 96)."""
    b, t = frames.shape[:2]
    crops = crop_boxes(frames.flatten(0, 1), boxes.flatten(0, 1))  # (B*T, 3, 96, 96)
    lower = crops[:, :, FACE_SIZE // 2 :].reshape(b, t * 3, FACE_SIZE // 2, FACE_SIZE)
    return lower
