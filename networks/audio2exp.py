"""Audio-to-expression: speech -> the 10 expression-bank weights per frame, and the emotion heard.

EDTalk's paper describes a semantically-aware audio-to-expression predictor but its code was never
released; this is our network for that role. Its input is the demos' audio front end: one mel
window (1, 80, 16) (200 ms) per 25-fps frame, as Audio2Lip takes.

    frames:   each window -> a small conv encoder -> feature (width)            (per frame)
    time:     residual dilated 1-D convolutions over the frame features (no padding inside)
    emotion:  logits over the eight MEAD emotions per frame
    exp:      linear head + softmax(emotion) @ per-emotion expression offsets    (semantic term)
    smooth:   Gaussian over time

The temporal part only sees `context` frames either side of a frame, and a clip's ends are
extended by repeating its first / last frame's feature, so a clip fed a chunk at a time
(`predict_chunks`) gives exactly what the whole clip gives, in memory that does not grow with it.
No BatchNorm: train and eval modes compute the same.
"""

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .audio2lip import gaussian_kernel

EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")  # MEAD's, in order

# Frame encoder: (in, out, stride) of 3x3 convolutions on the (1, 80, 16) window.
FRAME_LAYERS = ((1, 32, (2, 1)), (32, 64, 2), (64, 128, 2), (128, 256, 2))


class TemporalBlock(nn.Module):
    """x + conv(gelu(x)) with a dilated kernel-3 convolution and no padding: (B, C, L) -> (B, C, L - 2d)."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, dilation=dilation)
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        return x[:, :, d : x.shape[2] - d] + self.conv(F.gelu(x))


class Audio2Exp(nn.Module):
    """Mel windows (B, T, 1, 80, 16) -> expression coefficients (B, T, exp_dim) and emotion logits
    (B, T, num_emotions).

    depth temporal blocks with dilations 1, 2, 4, ... give each frame sum(dilations) frames of
    context either side (15 = 0.6 s for depth 4), plus the smoothing kernel's half width.
    """

    def __init__(
        self,
        exp_dim: int = 10,
        num_emotions: int = len(EMOTIONS),
        width: int = 256,
        depth: int = 4,
        smoothing_size: int = 9,
        smoothing_sigma: float = 2.0,
    ):
        super().__init__()
        convs = []
        for cin, cout, stride in FRAME_LAYERS:
            convs += [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU()]
        self.frame_encoder = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, width))
        self.temporal = nn.ModuleList(TemporalBlock(width, 2**i) for i in range(depth))
        self.emotion_head = nn.Linear(width, num_emotions)
        self.exp_head = nn.Linear(width, exp_dim)
        self.emotion_exp = nn.Parameter(torch.zeros(num_emotions, exp_dim))  # expression offset per emotion
        self.register_buffer("kernel", gaussian_kernel(smoothing_size, smoothing_sigma), persistent=False)
        self.radius = smoothing_size // 2
        self.context = sum(2**i for i in range(depth)) + self.radius

    def encode_frames(self, windows: torch.Tensor) -> torch.Tensor:
        """(..., 1, 80, 16) -> per-frame features (..., width)."""
        lead = windows.shape[:-3]
        return self.frame_encoder(windows.reshape(-1, *windows.shape[-3:])).reshape(*lead, -1)

    def decode(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features with `context` extra frames at each end (B, L + 2 * context, width) ->
        smoothed expression (B, L, exp_dim) and emotion logits (B, L, num_emotions)."""
        h = feats.transpose(1, 2)
        for block in self.temporal:
            h = block(h)
        h = h.transpose(1, 2)  # (B, L + 2 * radius, width)
        logits = self.emotion_head(h)
        raw = self.exp_head(h) + logits.softmax(-1) @ self.emotion_exp
        c = raw.shape[2]
        weight = self.kernel.to(raw)[None, None].expand(c, 1, -1)
        exp = F.conv1d(raw.transpose(1, 2), weight, groups=c).transpose(1, 2)
        return exp, logits[:, self.radius : logits.shape[1] - self.radius]

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole clips, their ends extended by repetition (as at inference):
        (B, T, 1, 80, 16) -> expression (B, T, exp_dim), emotion logits (B, T, num_emotions)."""
        feats = self.encode_frames(windows)
        c = self.context
        padded = torch.cat([feats[:, :1].expand(-1, c, -1), feats, feats[:, -1:].expand(-1, c, -1)], 1)
        return self.decode(padded)

    def centre(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training windows that carry their real context: (B, T + 2 * context, 1, 80, 16) ->
        expression (B, T, exp_dim) and emotion logits (B, T, num_emotions) of the T centre frames,
        exactly what `forward` gives those frames inside the whole clip."""
        return self.decode(self.encode_frames(windows))

    @torch.no_grad()
    def predict(self, windows: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """One clip: (T, 1, 80, 16) -> expression (T, exp_dim), emotion probabilities (num_emotions,)."""
        assert windows.dim() == 4 and tuple(windows.shape[1:]) == (1, 80, 16), (
            f"(T, 1, 80, 16) expected: {windows.shape}"
        )
        return self.predict_chunks(windows.split(chunk))

    @torch.no_grad()
    def predict_chunks(self, chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `predict` for a clip whose (n, 1, 80, 16) windows arrive in consecutive chunks:
        equal to the whole clip's `forward`, holding only 2 * context frame features besides the
        (T, exp_dim) result. The clip's emotion is the softmax of its frames' mean logits."""
        c = self.context
        pending = None  # frame features not yet decoded, with the context they need
        out, logit_sum, frames = [], 0, 0
        for chunk in chunks:
            feats = self.encode_frames(chunk)
            pending = torch.cat([feats[:1].expand(c, -1), feats]) if pending is None else torch.cat([pending, feats])
            if len(pending) > 2 * c:
                exp, logits = self.decode(pending[None])
                out.append(exp[0])
                logit_sum, frames = logit_sum + logits[0].sum(0), frames + logits.shape[1]
                pending = pending[len(pending) - 2 * c :]
        if pending is None:
            raise ValueError("no mel windows: the clip is empty")
        exp, logits = self.decode(torch.cat([pending, pending[-1:].expand(c, -1)])[None])
        out.append(exp[0])
        logit_sum, frames = logit_sum + logits[0].sum(0), frames + logits.shape[1]
        return torch.cat(out), (logit_sum / frames).softmax(-1)
