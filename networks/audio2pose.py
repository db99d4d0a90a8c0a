"""Audio-to-pose: a conditional normalising flow (MoGlow-style) over the 6 pose-bank coefficients.

Each frame's pose x_t (6,) is modelled as p(x_t | c_t), an invertible map of a standard Gaussian
z_t, where the control c_t is a GRU's state after seeing, frame by frame, the audio features of a
window of frames around t, the k previous poses and an optional style (the pose statistics of a
reference clip). Training maximises the exact log-likelihood with the true previous poses
(teacher forcing); generation samples frame by frame, feeding back its own poses, with
z_t = temperature * N(0, I) (temperature 0: z = 0, one deterministic path) drawn from a seeded
generator in frame order, so any chunking of the audio gives the same poses (`PoseStream`).

Shapes: mel windows (..., 1, 80, 16) (one per 25-fps frame, the Wav2Lip front end), poses
(B, T, 6) in the generator's pose-bank coefficient space, styles (B, 13) = [mean (6), std (6),
present (1)] of a reference clip's poses (zeros when absent, see `pose_style`).
"""

import math

import torch
from torch import nn


def pose_style(poses: torch.Tensor | None, pose_dim: int = 6) -> torch.Tensor:
    """Style of a reference clip: (N, pose_dim) poses -> (2 * pose_dim + 1,) [mean, std, 1]; None -> zeros."""
    if poses is None:
        return torch.zeros(2 * pose_dim + 1)
    poses = poses.float()
    std = poses.std(0, unbiased=False) if len(poses) > 1 else torch.zeros_like(poses[0])
    return torch.cat([poses.mean(0), std, poses.new_ones(1)])


class AudioFeatures(nn.Module):
    """A small convolutional encoder: mel windows (..., 1, 80, 16) -> features (..., dim)."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, (8, 4), stride=(8, 4)),  # (16, 10, 4): 8 mel bands x 4 frames per cell
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),  # (32, 5, 2)
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(32 * 5 * 2, dim),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        lead = windows.shape[:-3]
        return self.net(windows.reshape(-1, *windows.shape[-3:])).reshape(*lead, -1)


class ActNorm(nn.Module):
    """Per-dimension affine map y = (x + bias) * exp(log_scale), starting as the identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x + self.bias) * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return y * (-self.log_scale).exp() - self.bias


class InvertibleLinear(nn.Module):
    """Glow's invertible 1x1 convolution on a vector, LU-parametrised: W = P L (U + diag(sign * exp(log_s)))."""

    def __init__(self, dim: int):
        super().__init__()
        q = torch.linalg.qr(torch.randn(dim, dim))[0]
        p, lower, upper = torch.linalg.lu(q)
        diag = upper.diagonal()
        self.register_buffer("perm", p)
        self.register_buffer("sign", diag.sign())
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(upper.triu(1))
        self.log_s = nn.Parameter(diag.abs().log())

    def weight(self) -> torch.Tensor:
        eye = torch.eye(len(self.log_s), device=self.log_s.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.t() + torch.diag(self.sign * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.weight().t(), self.log_s.sum().expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return y @ torch.linalg.inv(self.weight()).t()


class ConditionalAffine(nn.Module):
    """The whole vector shifted and scaled by a linear function of the control alone (a Gaussian
    step: it carries the conditional mean and spread, the couplings the rest); starts as the identity."""

    def __init__(self, dim: int, control: int):
        super().__init__()
        self.net = nn.Linear(control, 2 * dim)
        nn.init.zeros_(self.net.weight)
        nn.init.zeros_(self.net.bias)

    def _shift_log_scale(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw = self.net(c).chunk(2, -1)
        return shift, 5 * torch.tanh(raw / 5)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, log_scale = self._shift_log_scale(c)
        return (x - shift) * (-log_scale).exp(), -log_scale.sum(-1)

    def inverse(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, log_scale = self._shift_log_scale(c)
        return y * log_scale.exp() + shift


class AffineCoupling(nn.Module):
    """One half of the vector is shifted and scaled by a net of the other half and the control c;
    `flip` chooses the half. The scale's log is bounded by 2 tanh(./2); the last layer starts at
    zero (an identity step)."""

    def __init__(self, dim: int, control: int, hidden: int, flip: bool):
        super().__init__()
        self.keep = dim // 2
        self.flip = flip
        self.net = nn.Sequential(
            nn.Linear(self.keep + control, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2 * (dim - self.keep)),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flip(-1) if self.flip else x
        return x[..., : self.keep], x[..., self.keep :]

    def _join(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat([a, b], -1)
        return x.flip(-1) if self.flip else x

    def _shift_log_scale(self, a: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw = self.net(torch.cat([a, c], -1)).chunk(2, -1)
        return shift, 2 * torch.tanh(raw / 2)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._split(x)
        shift, log_scale = self._shift_log_scale(a, c)
        return self._join(a, (b + shift) * log_scale.exp()), log_scale.sum(-1)

    def inverse(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a, b = self._split(y)
        shift, log_scale = self._shift_log_scale(a, c)
        return self._join(a, b * (-log_scale).exp() - shift)


class Audio2Pose(nn.Module):
    """Audio (+ previous poses, + style) -> pose-bank coefficients, by a conditional flow.

    pose_dim: coefficients per frame (6); audio_dim: features per mel window; context: frames of
    audio features on each side of t in the control; history: previous poses in the control;
    hidden: GRU and coupling width; steps: flow steps (actnorm, invertible linear, coupling);
    history_dropout: drop rate of the previous poses during training (so the control cannot be
    ignored in favour of the past, as in MoGlow).

    Poses are normalised by the buffers `pose_mean` / `pose_std` (the training set's statistics,
    set with `set_normalization`) before the flow; likelihoods are those of the raw coefficients.
    """

    def __init__(
        self,
        pose_dim: int = 6,
        audio_dim: int = 64,
        context: int = 2,
        history: int = 2,
        hidden: int = 128,
        steps: int = 6,
        history_dropout: float = 0.2,
    ):
        super().__init__()
        self.pose_dim, self.context, self.history = pose_dim, context, history
        self.history_dropout = history_dropout
        self.audio = AudioFeatures(audio_dim)
        self.audio_proj = nn.Linear((2 * context + 1) * audio_dim, hidden)
        self.rnn = nn.GRU(hidden + history * pose_dim + 2 * pose_dim + 1, hidden, batch_first=True)
        self.flow = nn.ModuleList([ConditionalAffine(pose_dim, hidden)])
        for i in range(steps):
            self.flow.extend(
                [ActNorm(pose_dim), InvertibleLinear(pose_dim), AffineCoupling(pose_dim, hidden, hidden, i % 2 == 1)]
            )
        self.register_buffer("pose_mean", torch.zeros(pose_dim))
        self.register_buffer("pose_std", torch.ones(pose_dim))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Statistics (pose_dim,) of the training poses; coefficients are normalised by them."""
        self.pose_mean.copy_(mean)
        self.pose_std.copy_(std.clamp_min(1e-6))

    def _normalize(self, poses: torch.Tensor) -> torch.Tensor:
        return (poses - self.pose_mean) / self.pose_std

    def _style(self, style: torch.Tensor) -> torch.Tensor:
        """Raw style (B, 13) -> normalised (B, 13): mean and log std in the normalised space; absent -> zeros."""
        d, present = self.pose_dim, style[:, -1:]
        mean = (style[:, :d] - self.pose_mean) / self.pose_std
        log_std = torch.log(style[:, d : 2 * d] / self.pose_std + 1e-3)
        return torch.cat([mean, log_std, present], -1) * present

    def audio_context(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (B, T + 2 * context, A) -> projected windows of 2 * context + 1 frames (B, T, hidden)."""
        windows = feats.unfold(1, 2 * self.context + 1, 1)  # (B, T, A, 2 * context + 1)
        return self.audio_proj(windows.transpose(2, 3).flatten(2))

    def control(
        self, audio: torch.Tensor, previous: torch.Tensor, style: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GRU over the frames: audio (B, T, hidden), previous normalised poses (B, T, history * pose_dim),
        normalised style (B, 13) -> controls (B, T, hidden) and the GRU state (1, B, hidden)."""
        if self.training and self.history_dropout > 0:
            keep = torch.rand(previous.shape[:2] + (1,), device=previous.device) >= self.history_dropout
            previous = previous * keep
        inputs = torch.cat([audio, previous, style[:, None].expand(-1, audio.shape[1], -1)], -1)
        return self.rnn(inputs, state)

    def encode(
        self, poses: torch.Tensor, windows: torch.Tensor, past: torch.Tensor, style: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Base-space codes z (B, T, pose_dim) (standard normal noise for a well-trained flow) and the
        per-frame log p(x_t | audio, x_<t, style) in nats (B, T).

        poses: (B, T, pose_dim) targets; windows: (B, T + 2 * context, 1, 80, 16) mel windows of the
        frames from t - context to t + context (edges repeated at clip ends); past: (B, history,
        pose_dim) the poses before the first frame (oldest first); style: (B, 13) raw (`pose_style`).
        """
        y = self._normalize(poses)
        full = torch.cat([self._normalize(past), y], 1)
        previous = torch.cat([full[:, i : i + y.shape[1]] for i in range(self.history)], -1)
        c, _ = self.control(self.audio_context(self.audio(windows)), previous, self._style(style))
        z, logdet = y, torch.zeros(y.shape[:2], device=y.device)
        for layer in self.flow:
            z, ld = layer(z, c)
            logdet = logdet + ld
        log_base = -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)
        return z, log_base + logdet - self.pose_std.log().sum()

    def log_likelihood(
        self, poses: torch.Tensor, windows: torch.Tensor, past: torch.Tensor, style: torch.Tensor
    ) -> torch.Tensor:
        """Per-frame log-likelihood in nats (B, T); arguments as `encode`."""
        return self.encode(poses, windows, past, style)[1]

    def invert(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Normalised poses from base samples: z (..., pose_dim), controls (..., hidden)."""
        for layer in reversed(self.flow):
            z = layer.inverse(z, c)
        return z

    def stream(
        self,
        start: torch.Tensor,
        style: torch.Tensor | None = None,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> "PoseStream":
        """A generator of poses fed with consecutive chunks of mel windows (see `PoseStream`);
        temperature 1 samples the trained distribution (renders pass the user's choice).

        start: (B, pose_dim) or (pose_dim,) the pose before the first frame (e.g. the source's own).
        """
        return PoseStream(self, start, style, temperature, seed)

    @torch.no_grad()
    def generate(
        self,
        windows: torch.Tensor,
        start: torch.Tensor,
        style: torch.Tensor | None = None,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> torch.Tensor:
        """Poses for one clip in one go: windows (T, 1, 80, 16) or (B, T, 1, 80, 16) -> (T, 6) / (B, T, 6)."""
        batched = windows.dim() == 5
        stream = self.stream(start, style, temperature, seed)
        out = torch.cat([stream.push(windows if batched else windows[None]), stream.finish()], 1)
        return out if batched else out[0]


class PoseStream:
    """Frame-by-frame sampling over consecutive chunks of mel windows, with bounded memory.

    `push(windows)` takes the next (B, n, 1, 80, 16) windows (or (n, 1, 80, 16) for B = 1) and
    returns the poses (B, m, pose_dim) of every frame whose audio context is complete (m may lag n
    by `context` frames); `finish()` returns the remaining frames (the last window repeated as
    the right context). The state carried across chunks (GRU state, last poses, the last audio
    features, the seeded noise generator) makes the output independent of the chunking.
    """

    def __init__(
        self, model: Audio2Pose, start: torch.Tensor, style: torch.Tensor | None, temperature: float, seed: int
    ):
        if model.training:
            raise RuntimeError("Audio2Pose generation needs eval mode")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.model, self.temperature = model, temperature
        device = model.pose_mean.device
        start = start.reshape(-1, model.pose_dim).to(device, torch.float32)
        self.batch = len(start)
        style = pose_style(None, model.pose_dim) if style is None else style
        self.style = model._style(style.reshape(-1, style.shape[-1]).to(device, torch.float32).expand(self.batch, -1))
        self.past = model._normalize(start)[:, None].expand(-1, model.history, -1)  # (B, history, pose_dim)
        self.state = None
        self.feats = None  # audio features not yet consumed as the centre of a window (with left context)
        self.noise = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def push(self, windows: torch.Tensor) -> torch.Tensor:
        windows = windows if windows.dim() == 5 else windows[None]
        if windows.shape[1] == 0:
            return torch.zeros(self.batch, 0, self.model.pose_dim, device=self.model.pose_mean.device)
        feats = self.model.audio(windows.to(self.model.pose_mean.device, torch.float32))
        if self.feats is None:  # the first frame's left context repeats it
            feats = torch.cat([feats[:, :1].expand(-1, self.model.context, -1), feats], 1)
        else:
            feats = torch.cat([self.feats, feats], 1)
        return self._run(feats)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        if self.feats is None:
            return torch.zeros(self.batch, 0, self.model.pose_dim, device=self.model.pose_mean.device)
        return self._run(torch.cat([self.feats, self.feats[:, -1:].expand(-1, self.model.context, -1)], 1))

    def _run(self, feats: torch.Tensor) -> torch.Tensor:
        """Sample every frame whose window lies inside `feats`; keep the last 2 * context features."""
        model, k = self.model, 2 * self.model.context
        if feats.shape[1] <= k:
            self.feats = feats
            return torch.zeros(self.batch, 0, model.pose_dim, device=feats.device)
        self.feats = feats[:, feats.shape[1] - k :]
        audio = model.audio_context(feats)  # (B, n, hidden)
        out = []
        for t in range(audio.shape[1]):
            c, self.state = model.control(audio[:, t : t + 1], self.past.flatten(1)[:, None], self.style, self.state)
            z = torch.randn(self.batch, model.pose_dim, generator=self.noise).to(feats.device) * self.temperature
            y = model.invert(z, c[:, 0])
            self.past = torch.cat([self.past[:, 1:], y[:, None]], 1)
            out.append(y)
        return torch.stack(out, 1) * model.pose_std + model.pose_mean
