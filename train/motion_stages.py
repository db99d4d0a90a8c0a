"""Audio-to-motion stages: audio networks that learn the frozen generator's motion coefficients.

Their targets are the teacher's per-frame coefficients of the training clips, computed once per set
and generator file (`teacher.py`), so no stage here runs an image network while it trains. Each
class is a `stage.Stage` and runs in the shared loop. Their checkpoints record the teacher they were
trained against (`generator_fingerprint`, as motion templates do), so inference can tell a motion
model from another generator's coordinates.

Both are trained as they are used at inference:
- Audio2Exp's windows carry the clip's real audio context on both sides (the mel windows of the
  `context` frames before and after, padded only at the clip's true ends, where inference pads
  too), and the loss covers the window's frames. Before, the context was the window's edge frames
  repeated, so about three quarters of a 50-frame window's targets saw context that never occurs
  at inference; expected effect of retraining: a lower held-out error near window edges and no
  train/inference mismatch (not measured: no dataset here).
- Audio2Pose's style statistics come from the clip's frames outside the predicted window, as a
  reference clip at inference is never the clip being generated. Before, they were computed over
  the clip including the window, a leak that lets the flow read its targets' mean and spread;
  expected effect: a slightly higher training likelihood gap but a style that transfers.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edtalk.checkpoints import strip_prefixes
from networks.audio2exp import Audio2Exp
from networks.audio2pose import Audio2Pose, pose_style

from . import teacher
from .checkpoint import load
from .config import MotionConfig
from .datasets import AudioWindowDataset
from .stage import Stage


def _delta(x: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame change along time: (B, T, C) -> (B, T - 1, C)."""
    return x[:, 1:] - x[:, :-1]


def _tracks_image(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Coefficient tracks as grey images for the sample grid: (B, T, C) -> (B, 3, C, T) in [-1, 1]."""
    return (x / scale).clamp(-1, 1).transpose(1, 2)[:, None].expand(-1, 3, -1, -1)


class MotionStage(Stage):
    """Shared by the audio-to-motion stages: the teacher's cached coefficients and its fingerprint."""

    config = MotionConfig

    def load_teacher(self, cfg: MotionConfig, device: torch.device) -> None:
        """Read (computing it on rank 0 the first time) the teacher cache of cfg.generator."""
        if not cfg.generator:
            raise SystemExit(f"--generator is required: {self.teacher_role}")
        self.teacher = teacher.load_or_compute(cfg.data, cfg.generator, device, workers=cfg.workers)
        self.fingerprint = teacher.generator_fingerprint(cfg.generator)

    def usable_clips(self, cfg: MotionConfig, split: str) -> int:
        """Clips with audio and at least `window` frames (known before the teacher pass)."""
        return len(AudioWindowDataset(cfg.data, split, window=cfg.window))

    def state(self, models: dict) -> dict:
        return super().state(models) | {"generator_fingerprint": self.fingerprint}


class Audio2ExpStage(MotionStage):
    """Audio-to-expression: Audio2Exp learns the full generator's expression coefficients of each
    frame (mean square error, and of their frame-to-frame changes) and the clip's MEAD emotion,
    read from its name (cross-entropy of the window's mean logits; clips without one, e.g. HDTF,
    add no emotion term). The teacher is `--generator` (a full EDTalk checkpoint)."""

    defaults = {"batch_size": 16, "lr": 0.0005, "steps": 50000, "save_every": 1000}
    weights = {"exp": 1.0, "smooth": 1.0, "emotion": 0.1}
    checkpoint_key = "audio2exp"
    val_metrics = ("exp", "accuracy")  # mean square expression error per window; emotion accuracy per labelled clip
    teacher_role = "the trained full EDTalk generator (the teacher)"

    def build(self, cfg: MotionConfig, device: torch.device) -> dict[str, nn.Module]:
        self.load_teacher(cfg, device)
        if "exp" not in self.teacher.parts:
            raise SystemExit(
                f"{cfg.generator} is a lip-pose generator (no expression bank): the audio-to-expression "
                "teacher must be a full EDTalk generator"
            )
        model = Audio2Exp()
        self.context = model.context
        if cfg.init:
            model.load_state_dict(strip_prefixes(load(cfg.init)["audio2exp"]))
        return {"audio2exp": model.to(device)}

    def dataset(self, cfg: MotionConfig, split: str):
        return teacher.CoefficientWindowDataset(
            cfg.data, split, self.teacher, window=cfg.window, seed=cfg.seed, context=self.context
        )

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        exp, logits = models["audio2exp"].centre(batch["mels"])  # (B, T, 10), (B, T, 8)
        target, labels = batch["exp"], batch["emotion"]
        known = labels >= 0
        clip_logits = logits.mean(1)
        emotion = F.cross_entropy(clip_logits[known], labels[known]) if known.any() else clip_logits.sum() * 0
        out = {"exp": F.mse_loss(exp, target), "smooth": F.mse_loss(_delta(exp), _delta(target)), "emotion": emotion}
        scale = target.detach().abs().amax((1, 2), keepdim=True).clamp_min(1e-6)
        return out, {"rows": [_tracks_image(exp.detach(), scale), _tracks_image(target, scale)]}

    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Held-out expression error against the teacher (mean square per window) and emotion
        accuracy (one value per clip whose name gives its emotion)."""
        exp, logits = models["audio2exp"].centre(batch["mels"])
        labels = batch["emotion"]
        known = labels >= 0
        return {
            "exp": (exp - batch["exp"]).square().flatten(1).mean(1),
            "accuracy": (logits.mean(1).argmax(1) == labels)[known].float(),
        }


# ---- audio-to-pose ---------------------------------------------------------------------------


class PoseWindowDataset(teacher.CoefficientWindowDataset):
    """Windows for the audio-to-pose flow: `window` frames of a clip with what the flow conditions on.

    Keys: those of `CoefficientWindowDataset` (mels with `context` frames either side, clip edges
    repeated as in generation; pose (window, 6)); past (history, 6) the poses before the window
    (the first frame repeated at the clip start); style (13,) the pose statistics (`pose_style`) of
    the clip's frames OUTSIDE the window (a reference never holds the frames being generated), or
    zeros (no style) in a fraction `style_dropout` of the samples, so that the flow also works
    without a reference, and when the window is the whole clip.
    """

    def __init__(self, root, split, teacher_coefs, window, seed, context: int, history: int, style_dropout: float):
        super().__init__(root, split, teacher_coefs, window=window, seed=seed, context=context)
        self.history, self.style_dropout = history, style_dropout

    def sample(self, index: int, rng) -> dict:
        item = super().sample(index, rng)
        start = item["start"]
        pose = torch.from_numpy(np.ascontiguousarray(self.teacher[self.names[index]]["pose"]))
        outside = torch.cat([pose[:start], pose[start + self.window :]])
        dropped = rng.random() < self.style_dropout or len(outside) == 0
        return {
            "mels": item["mels"],
            "pose": item["pose"],
            "past": pose[np.clip(np.arange(start - self.history, start), 0, None)],
            "style": pose_style(None if dropped else outside),
            "start": start,
        }


class Audio2PoseStage(MotionStage):
    """Audio-to-pose: the conditional flow Audio2Pose learns the generator's head-pose coefficients of
    each frame by exact maximum likelihood (teacher-forced previous poses); validation: the
    negative log-likelihood per frame (nats, in coefficient units) on held-out windows, without a
    style. The teacher
    is `--generator` (a lip-pose or full checkpoint: both have the pose bank). The coefficients are
    normalised by the training set's mean and spread, stored in the model."""

    defaults = {"batch_size": 16, "lr": 0.001, "save_every": 1000}
    weights = {"nll": 1.0}
    checkpoint_key = "audio2pose"
    val_metrics = ("nll",)
    style_dropout = 0.3
    teacher_role = "the trained generator (the teacher of the pose coefficients)"

    def build(self, cfg: MotionConfig, device: torch.device) -> dict[str, nn.Module]:
        self.load_teacher(cfg, device)
        model = Audio2Pose()
        self.context, self.history = model.context, model.history
        if cfg.init:
            model.load_state_dict(strip_prefixes(load(cfg.init)["audio2pose"]))
        else:
            poses = np.concatenate([self.teacher[n]["pose"] for n in self.dataset(cfg, cfg.split).names])
            model.set_normalization(torch.from_numpy(poses.mean(0)), torch.from_numpy(poses.std(0)))
        return {"audio2pose": model.to(device)}

    def dataset(self, cfg: MotionConfig, split: str):
        dropout = self.style_dropout if split == cfg.split else 1.0  # validation: no style, the default use
        return PoseWindowDataset(
            cfg.data, split, self.teacher, cfg.window, cfg.seed, self.context, self.history, dropout
        )

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        z, log_p = models["audio2pose"].encode(batch["pose"], batch["mels"], batch["past"], batch["style"])
        target = batch["pose"]
        scale = target.abs().amax((1, 2), keepdim=True).clamp_min(1e-6)
        rows = [_tracks_image(target, scale), _tracks_image(z.detach(), torch.tensor(3.0))]  # z: white noise when fit
        return {"nll": -log_p.mean()}, {"rows": rows}

    def validation_metrics(self, models: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Held-out negative log-likelihood per frame, one value per window."""
        log_p = models["audio2pose"].log_likelihood(batch["pose"], batch["mels"], batch["past"], batch["style"])
        return {"nll": -log_p.mean(1)}


MOTION_STAGES = {"audio2exp": Audio2ExpStage, "audio2pose": Audio2PoseStage}
