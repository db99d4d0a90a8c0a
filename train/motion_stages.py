"""Audio-to-motion stages: audio networks that learn the frozen generator's motion coefficients.

Their targets are the teacher's per-frame coefficients of the training clips, computed once per set
and generator file (`teacher.py`), so no stage here runs an image network while it trains. Each
class has the interface of the stages in `stages.py` (build, trainable, dataset, generator_losses,
validation_metrics, state, load_state) and runs in the same loop.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edtalk.audio import windows_from_mel
from networks.audio2exp import Audio2Exp
from networks.audio2pose import Audio2Pose, pose_style

from . import teacher
from .checkpoint import load, strip_prefixes
from .config import TrainConfig


def _delta(x: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame change along time: (B, T, C) -> (B, T - 1, C)."""
    return x[:, 1:] - x[:, :-1]


def _tracks_image(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Coefficient tracks as grey images for the sample grid: (B, T, C) -> (B, 3, C, T) in [-1, 1]."""
    return (x / scale).clamp(-1, 1).transpose(1, 2)[:, None].expand(-1, 3, -1, -1)


class Audio2ExpStage:
    """Audio-to-expression: Audio2Exp learns the full generator's expression coefficients of each
    frame (mean square error, and of their frame-to-frame changes) and the clip's MEAD emotion,
    read from its name (cross-entropy of the window's mean logits; clips without one, e.g. HDTF,
    add no emotion term). The teacher is `--generator` (a full EDTalk checkpoint)."""

    defaults = {"batch_size": 16, "lr": 0.0005, "steps": 50000, "save_every": 1000}
    weights = {"exp": 1.0, "smooth": 1.0, "emotion": 0.1}
    has_discriminator = False
    checkpoint_key = "audio2exp"
    val_metrics = ("exp", "accuracy")  # mean square expression error per window; emotion accuracy per labelled clip

    def build(self, cfg: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
        if not cfg.generator:
            raise SystemExit("--generator is required: the trained full EDTalk generator (the teacher)")
        self.teacher = teacher.load_or_compute(cfg.data, cfg.generator, device, workers=cfg.workers)
        if "exp" not in self.teacher.parts:
            raise SystemExit(
                f"{cfg.generator} is a lip-pose generator (no expression bank): the audio-to-expression "
                "teacher must be a full EDTalk generator"
            )
        model = Audio2Exp()
        if cfg.init:
            model.load_state_dict(strip_prefixes(load(cfg.init)["audio2exp"]))
        return {"audio2exp": model.to(device)}

    def trainable(self, models: dict, cfg: TrainConfig) -> list[nn.Parameter]:
        return list(models["audio2exp"].parameters())

    def dataset(self, cfg: TrainConfig, split: str):
        return teacher.CoefficientWindowDataset(cfg.data, split, self.teacher, window=cfg.window, seed=cfg.seed)

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        exp, logits = models["audio2exp"](batch["mels"])  # (B, T, 10), (B, T, 8)
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
        exp, logits = models["audio2exp"](batch["mels"])
        labels = batch["emotion"]
        known = labels >= 0
        return {
            "exp": (exp - batch["exp"]).square().flatten(1).mean(1),
            "accuracy": (logits.mean(1).argmax(1) == labels)[known].float(),
        }

    def state(self, models: dict) -> dict:
        return {"audio2exp": models["audio2exp"].state_dict()}

    def load_state(self, models: dict, state: dict) -> None:
        models["audio2exp"].load_state_dict(strip_prefixes(state["audio2exp"]))


# ---- audio-to-pose ---------------------------------------------------------------------------


class PoseWindowDataset(teacher.CoefficientWindowDataset):
    """Windows for the audio-to-pose flow: `window` frames of a clip with what the flow conditions on.

    Keys: pose (window, 6) teacher coefficients; mels (window + 2 * context, 1, 80, 16), the
    windows of frames start - context .. start + window + context - 1 (clip edges repeated, as in
    generation); past (history, 6) the poses before the window (the first frame repeated at the
    clip start); style (13,) the whole clip's pose statistics (`pose_style`), or zeros (no style)
    in a fraction `style_dropout` of the samples so that the flow also works without a reference;
    start (int).
    """

    def __init__(self, root, split, teacher_coefs, window, seed, context: int, history: int, style_dropout: float):
        super().__init__(root, split, teacher_coefs, window=window, seed=seed)
        self.context, self.history, self.style_dropout = context, history, style_dropout

    def sample(self, index: int, rng) -> dict:
        name = self.names[index]
        length = self.reader.length(name)
        start = rng.randrange(length - self.window + 1)
        frames = np.clip(np.arange(start - self.context, start + self.window + self.context), 0, length - 1)
        pose = torch.from_numpy(np.ascontiguousarray(self.teacher[name]["pose"]))
        past = pose[np.clip(np.arange(start - self.history, start), 0, None)]
        style = pose_style(None if rng.random() < self.style_dropout else pose)
        return {
            "mels": torch.from_numpy(windows_from_mel(self.reader.mel(name), length)[frames]),
            "pose": pose[start : start + self.window],
            "past": past,
            "style": style,
            "start": start,
        }


class Audio2PoseStage:
    """Audio-to-pose: the conditional flow Audio2Pose learns the generator's head-pose coefficients of
    each frame by exact maximum likelihood (teacher-forced previous poses); validation: the
    negative log-likelihood per frame (nats, in coefficient units) on held-out windows, without a
    style. The teacher
    is `--generator` (a lip-pose or full checkpoint: both have the pose bank). The coefficients are
    normalised by the training set's mean and spread, stored in the model."""

    defaults = {"batch_size": 16, "lr": 0.001, "save_every": 1000}
    weights = {"nll": 1.0}
    has_discriminator = False
    checkpoint_key = "audio2pose"
    val_metrics = ("nll",)
    style_dropout = 0.3

    def build(self, cfg: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
        if not cfg.generator:
            raise SystemExit("--generator is required: the trained generator (the teacher of the pose coefficients)")
        self.teacher = teacher.load_or_compute(cfg.data, cfg.generator, device, workers=cfg.workers)
        model = Audio2Pose()
        self.context, self.history = model.context, model.history
        if cfg.init:
            model.load_state_dict(strip_prefixes(load(cfg.init)["audio2pose"]))
        else:
            poses = np.concatenate([self.teacher[n]["pose"] for n in self.dataset(cfg, cfg.split).names])
            model.set_normalization(torch.from_numpy(poses.mean(0)), torch.from_numpy(poses.std(0)))
        return {"audio2pose": model.to(device)}

    def trainable(self, models: dict, cfg: TrainConfig) -> list[nn.Parameter]:
        return list(models["audio2pose"].parameters())

    def dataset(self, cfg: TrainConfig, split: str):
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

    def state(self, models: dict) -> dict:
        return {"audio2pose": models["audio2pose"].state_dict()}

    def load_state(self, models: dict, state: dict) -> None:
        models["audio2pose"].load_state_dict(strip_prefixes(state["audio2pose"]))


MOTION_STAGES = {"audio2exp": Audio2ExpStage, "audio2pose": Audio2PoseStage}
