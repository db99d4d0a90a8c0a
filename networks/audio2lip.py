"""Audio-to-Mouth network: Wav2Lip's audio encoder + a linear map to the 20 mouth coefficients."""

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Wav2Lip's encoders in stages: (in, out, kernel, stride, padding, residual blocks after it). A stage is
# one ConvBlock then that many 3x3 residual ConvBlocks; `conv_stack` numbers the blocks `N` in order.
AUDIO_ENCODER_STAGES = (
    (1, 32, 3, 1, 1, 2),
    (32, 64, 3, (3, 1), 1, 2),
    (64, 128, 3, 3, 1, 2),
    (128, 256, 3, (3, 2), 1, 1),
    (256, 512, 3, 1, 0, 0),
    (512, 512, 1, 1, 0, 0),
)


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm2d (+ residual input) + ReLU; the residual is added before the ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride, padding: int, residual: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x):
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return F.relu(out)


def conv_stack(stages: Sequence[tuple]) -> nn.Sequential:
    """The ConvBlocks of `stages` (see AUDIO_ENCODER_STAGES) in one Sequential (state-dict keys `N.conv_block...`)."""
    blocks = []
    for cin, cout, kernel, stride, padding, residuals in stages:
        blocks.append(ConvBlock(cin, cout, kernel, stride, padding))
        blocks += [ConvBlock(cout, cout, 3, 1, 1, residual=True) for _ in range(residuals)]
    return nn.Sequential(*blocks)


def gaussian_kernel(size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,), computed in float64 and returned as float32."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


def smooth_coefficients(coefs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Smooth each coefficient track along time with zero padding: (T, C) -> (T, C).

    Edge frames are pulled toward 0 by the zero padding, as in the official code.
    """
    c = coefs.shape[1]
    weight = kernel.to(coefs)[None, None].expand(c, 1, -1)
    out = F.conv1d(coefs.t()[None], weight, padding=kernel.shape[0] // 2, groups=c)
    return out[0].t()


class Audio2Lip(nn.Module):
    """Mel windows (T, 1, 80, 16) -> mouth coefficients (T, 20)."""

    def __init__(self, lip_dim: int = 20, smoothing_size: int = 3, smoothing_sigma: float = 1.0):
        super().__init__()
        self.audio_encoder = conv_stack(AUDIO_ENCODER_STAGES)
        self.mapping = nn.Linear(512, lip_dim)
        self.smoothing_size = smoothing_size
        self.smoothing_sigma = smoothing_sigma

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Raw coefficients: (T, 1, 80, 16) -> (T, lip_dim), or (B, T, 1, 80, 16) -> (B, T, lip_dim)."""
        lead = windows.shape[:-3]
        feats = self.audio_encoder(windows.reshape(-1, *windows.shape[-3:]))
        return self.mapping(feats.flatten(1)).reshape(*lead, -1)

    @torch.no_grad()
    def predict(self, windows: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Smoothed coefficients for one clip, as the demos use them: (T, 1, 80, 16) -> (T, lip_dim).

        Windows are encoded `chunk` at a time (exact in eval mode). Not checked here: a library
        user's windows go through edtalk.inputs.predict_from_mel.
        """
        assert windows.dim() == 4 and tuple(windows.shape[1:]) == (1, 80, 16), (
            f"(T, 1, 80, 16) expected: {windows.shape}"
        )
        return self.predict_chunks(windows.split(chunk))

    @torch.no_grad()
    def predict_chunks(self, chunks: Iterable[torch.Tensor]) -> torch.Tensor:
        """Like `predict`, for a clip whose (n, 1, 80, 16) windows arrive in consecutive chunks, so
        that they never all have to be in memory. The smoothing runs over the whole (T, 20) track."""
        assert not self.training, "Audio2Lip.predict needs eval mode (BatchNorm running statistics)"
        raw = torch.cat([self(chunk) for chunk in chunks])
        return smooth_coefficients(raw, gaussian_kernel(self.smoothing_size, self.smoothing_sigma))
