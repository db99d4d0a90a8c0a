"""HiSTalk training stage: speech -> 3D face mesh on a FaceFormer-layout set, in the shared loop.

Each sample is a window of `window` consecutive frames of one clip (a random start per (seed,
epoch, index)), with the speech under it, the subject's template and its speaking-style one-hot
(the training subjects, sorted; a clip of another subject gets style 0). Validation reports LVE
(per frame the largest squared error over the lip vertices, averaged: evaluation/mesh.py's
definition on windows) and mean vertex error; the lowest LVE is kept as best.pt. Without a
--lip_region file the LVE is taken over every vertex.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from histalk.inference import CHECKPOINT_KEY, build_model, wav2vec2_from_config
from histalk.landmarks import embedded_landmarks, sampled_landmarks
from histalk.layout import (
    PRESETS,
    all_clips,
    check_layout,
    load_templates,
    preset_clips,
    read_list,
    subject_of,
    topology_faces,
)
from histalk.meshes import MeshError, read_region
from histalk.speech import encoder_input, load_speech, motion_frames, window
from networks.histalk import HiSTalkConfig, histalk_losses

from .config import TrainConfig, option
from .stage import Stage


@dataclass
class HiSTalkTrainConfig(TrainConfig):
    dataset: str = option("custom", "preset: vocaset (5023 vertices, 30 fps), biwi (23370, 25 fps) or custom")
    fps: float = option(0.0, "motion frame rate of the set (0: the preset's; required for custom)")
    train_list: str = option("", "clip names for training, one per line (default: the preset's split; custom: all)")
    val_list: str = option("", "clip names for validation, one per line (default: the preset's split)")
    audio_encoder: str = option("mel", "wav2vec2 (the paper's; needs --wav2vec2_path) or mel (ours, offline)")
    wav2vec2_path: str = option("", "local Hugging Face folder of a wav2vec 2.0 model (nothing is downloaded)")
    window: int = option(32, "consecutive frames per training sample (clips shorter than this are skipped)")
    lip_region: str = option("", "lip vertex indices (CodeTalker's lve.txt, or FLAME's mask file) for LVE/landmarks")
    landmark_embedding: str = option("", "FLAME landmark_embedding.npy (68 landmarks by barycentric embedding)")
    model: str = option("{}", "JSON of networks/histalk/config.py sizes, e.g. '{\"d_model\": 128}'")


def _split_clips(cfg: HiSTalkTrainConfig, split: str) -> list[str]:
    root = check_layout(cfg.data)
    given = {"train": cfg.train_list, cfg.val_split: cfg.val_list}.get(split, "")
    if given:
        return read_list(given)
    if cfg.dataset == "custom":
        return all_clips(root) if split == "train" else []
    return preset_clips(root, cfg.dataset, split)


def _fps(cfg: HiSTalkTrainConfig) -> float:
    fps = cfg.fps or PRESETS[cfg.dataset].fps
    if not fps:
        raise SystemExit("--fps is required with --dataset custom")
    return fps


class MeshClips(Dataset):
    """Windows of FaceFormer-layout clips: items {'audio', 'vertices' (W, V*3), 'template' (V*3), 'style' (S,)}."""

    def __init__(self, cfg: HiSTalkTrainConfig, clips: list[str], styles: list[str]):
        root = Path(cfg.data)
        self.templates, self.styles = load_templates(root), styles
        self.kind, self.window, self.fps, self.seed = cfg.audio_encoder, cfg.window, _fps(cfg), cfg.seed
        self.clips = []
        for name in clips:
            npy, wav = root / "vertices_npy" / f"{name}.npy", root / "wav" / f"{name}.wav"
            if not npy.is_file() or not wav.is_file():
                raise MeshError(f"{root}: clip {name} needs vertices_npy/{name}.npy and wav/{name}.wav")
            if subject_of(name) not in self.templates:
                raise MeshError(f"{root}/templates.pkl has no template for subject {subject_of(name)} (clip {name})")
            speech = load_speech(wav)
            vertices = np.load(npy, mmap_mode="r")
            frames = min(len(vertices), motion_frames(len(speech), self.fps))
            if frames >= self.window:
                self.clips.append((name, vertices, encoder_input(speech, self.kind), frames))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        name, vertices, features, frames = self.clips[index]
        start = int(np.random.default_rng((self.seed, epoch, index)).integers(0, frames - self.window + 1))
        subject = subject_of(name)
        style = torch.zeros(len(self.styles))
        style[self.styles.index(subject) if subject in self.styles else 0] = 1
        return {
            "audio": torch.from_numpy(window(features, self.kind, start, self.window, self.fps)),
            "vertices": torch.from_numpy(np.array(vertices[start : start + self.window], dtype=np.float32)),
            "template": torch.from_numpy(self.templates[subject].reshape(-1)),
            "style": style,
        }


def _track_image(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Landmark displacement tracks as grey images for the sample grid: (B, T, C) -> (B, 3, C, T) in [-1, 1]."""
    return (x / scale).clamp(-1, 1).transpose(1, 2)[:, None].expand(-1, 3, -1, -1)


class HiSTalkStage(Stage):
    config = HiSTalkTrainConfig
    defaults = {"batch_size": 4, "lr": 1e-3, "workers": 0, "val_every": 100, "sample_every": 1000, "steps": 20000}
    weights = {"vertex": 1.0, "landmark": 1.0, "velocity": 10.0}
    val_metrics = ("lve", "mve")
    checkpoint_key = CHECKPOINT_KEY

    def _datasets(self, cfg: HiSTalkTrainConfig) -> dict:
        if not hasattr(self, "_cache"):
            if cfg.audio_encoder not in ("mel", "wav2vec2"):
                raise SystemExit(f"--audio_encoder {cfg.audio_encoder}: choose mel or wav2vec2")
            train = _split_clips(cfg, "train")
            self.styles = sorted({subject_of(c) for c in train})
            self._cache = {"train": MeshClips(cfg, train, self.styles)}
        return self._cache

    def dataset(self, cfg: HiSTalkTrainConfig, split: str) -> Dataset:
        cache = self._datasets(cfg)
        if split not in cache:
            cache[split] = MeshClips(cfg, _split_clips(cfg, split), self.styles)
        return cache[split]

    def build(self, cfg: HiSTalkTrainConfig, device: torch.device) -> dict:
        root = Path(cfg.data)
        self._datasets(cfg)
        reference = load_templates(root)[self.styles[0]]
        preset = PRESETS[cfg.dataset]
        if preset.num_vertices and len(reference) != preset.num_vertices:
            raise SystemExit(
                f"--dataset {cfg.dataset}: templates have {len(reference)} vertices, not {preset.num_vertices}"
            )
        self.faces = topology_faces(root, len(reference))
        self.lips = read_region(cfg.lip_region, len(reference)) if cfg.lip_region else None
        sizes = json.loads(cfg.model)
        sizes.setdefault("period", round(_fps(cfg)))
        model_cfg = HiSTalkConfig(
            num_vertices=len(reference),
            num_styles=len(self.styles),
            fps=_fps(cfg),
            audio_encoder=cfg.audio_encoder,
            **sizes,
        )
        if cfg.landmark_embedding:
            landmarks = embedded_landmarks(cfg.landmark_embedding, self.faces)
        else:
            landmarks = sampled_landmarks(reference, model_cfg.num_landmarks, self.lips)
        model_cfg.num_landmarks = len(landmarks[0])
        self.wav2vec2_config = None
        wav2vec2 = None
        if cfg.audio_encoder == "wav2vec2":
            if not (Path(cfg.wav2vec2_path) / "config.json").is_file():
                raise SystemExit(
                    f"--wav2vec2_path '{cfg.wav2vec2_path}': a local Hugging Face wav2vec 2.0 folder (with config.json)"
                    " is required with --audio_encoder wav2vec2"
                )
            from transformers import Wav2Vec2Model

            loaded = Wav2Vec2Model.from_pretrained(cfg.wav2vec2_path, local_files_only=True)
            self.wav2vec2_config = loaded.config.to_dict()
            model_cfg.audio_dim = loaded.config.hidden_size
            wav2vec2 = wav2vec2_from_config(self.wav2vec2_config)
            wav2vec2.load_state_dict(loaded.state_dict())
        model = build_model(model_cfg, landmarks, wav2vec2)
        if cfg.init:
            from .checkpoint import load

            self.load_state({self.checkpoint_key: model}, load(cfg.init))
        lips = torch.arange(len(reference)) if self.lips is None else torch.as_tensor(self.lips)
        self.lip_index = lips.to(device)
        return {self.checkpoint_key: model.to(device)}

    def _forward(self, models: dict, batch: dict) -> dict:
        frames = batch["vertices"].shape[1]
        return models[self.checkpoint_key](batch["audio"], frames, batch["template"], batch["style"])

    def generator_losses(self, models: dict, batch: dict) -> tuple[dict, dict]:
        model = models[self.checkpoint_key]
        out = self._forward(models, batch)
        losses = histalk_losses(model, out, batch["vertices"], batch["template"])
        target = model.landmarks(batch["vertices"] - batch["template"][:, None])
        scale = target.abs().amax().clamp(min=1e-8)
        return losses, {"rows": [_track_image(out["landmarks"], scale), _track_image(target, scale)]}

    def validation_metrics(self, models: dict, batch: dict) -> dict:
        out = self._forward(models, batch)["vertices"]
        error = (out - batch["vertices"]).unflatten(-1, (-1, 3)).square().sum(-1)  # (B, T, V)
        return {"lve": error[:, :, self.lip_index].amax(dim=2).mean(dim=1), "mve": error.mean(dim=(1, 2))}

    def state(self, models: dict) -> dict:
        faces = None if self.faces is None else torch.as_tensor(self.faces)
        model = models[self.checkpoint_key]
        model = getattr(model, "module", model)
        return super().state(models) | {
            "histalk_config": model.cfg.to_dict(),
            "styles": list(self.styles),
            "faces": faces,
            "wav2vec2_config": self.wav2vec2_config,
        }
