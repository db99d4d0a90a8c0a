"""Load a HiSTalk checkpoint and turn speech into vertices, an mp4 render, a .npy and PLY meshes."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edtalk.checkpoints import read_checkpoint
from edtalk.errors import CheckpointError
from edtalk.files import write_atomically
from edtalk.signals import raise_if_interrupted
from edtalk.video_io import VideoWriter
from networks.histalk import HiSTalk, HiSTalkConfig, Wav2Vec2Features

from .meshes import MeshError, read_mesh, read_templates, write_ply
from .render import DEFAULT_SIZE, MeshRenderer
from .speech import encoder_input, load_speech, motion_frames

CHECKPOINT_KEY = "histalk"


def build_model(cfg: HiSTalkConfig, landmarks: tuple, wav2vec2: torch.nn.Module | None = None) -> HiSTalk:
    """The network for `cfg`; `wav2vec2` (a transformers Wav2Vec2Model) when cfg.audio_encoder is 'wav2vec2'."""
    encoder = None if wav2vec2 is None else Wav2Vec2Features(wav2vec2, cfg.audio_dim, cfg.d_model)
    vertices, weights = (torch.as_tensor(np.asarray(x)) for x in landmarks)
    return HiSTalk(cfg, vertices, weights, encoder)


def wav2vec2_from_config(config: dict) -> torch.nn.Module:
    """An (untrained) Wav2Vec2Model of a stored config; its weights come with the checkpoint."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    return Wav2Vec2Model(Wav2Vec2Config.from_dict(config))


@dataclass
class MeshResult:
    """What `MeshAnimator.render` wrote."""

    video: Path | None
    npy: Path
    frames: int
    fps: float
    meshes: Path | None

    def __str__(self) -> str:
        parts = [
            f"wrote {self.video or self.npy}: {self.frames} frames, {self.frames / self.fps:.2f} s, {self.fps:g} fps"
        ]
        parts.append(f"vertices: {self.npy}")
        if self.meshes:
            parts.append(f"meshes: {self.meshes}/")
        return ", ".join(parts)


class MeshAnimator:
    """A trained HiSTalk model ready for inference (see `load`)."""

    def __init__(self, model: HiSTalk, styles: list[str], faces: np.ndarray | None, device: torch.device):
        self.model = model.eval().to(device)
        self.styles, self.faces, self.device = styles, faces, device
        self.fps = model.cfg.fps

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "MeshAnimator":
        """A train/train_histalk.py checkpoint (best.pt or any step) on `device`."""
        data = read_checkpoint(path, "HiSTalk checkpoint")
        if CHECKPOINT_KEY not in data or "histalk_config" not in data:
            raise CheckpointError(f"{path} is not a HiSTalk checkpoint (made by train/train_histalk.py)")
        cfg = HiSTalkConfig(**data["histalk_config"])
        wav2vec2 = wav2vec2_from_config(data["wav2vec2_config"]) if cfg.audio_encoder == "wav2vec2" else None
        state = data[CHECKPOINT_KEY]
        model = build_model(cfg, (state["landmark_vertices"], state["landmark_weights"]), wav2vec2)
        model.load_state_dict(state)
        faces = data.get("faces")
        return cls(model, list(data["styles"]), None if faces is None else faces.numpy(), torch.device(device))

    def template(self, path: str | Path, subject: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(V, 3) neutral vertices and triangles (or None) from templates.pkl + subject, or a .ply/.obj mesh."""
        path = Path(path)
        if path.suffix.lower() in (".ply", ".obj"):
            vertices, faces = read_mesh(path)
            faces = faces if len(faces) else self.faces
        else:
            templates = read_templates(path)
            if subject is None:
                raise MeshError(f"--subject is required with --template_path {path} (one of {', '.join(templates)})")
            if subject not in templates:
                raise MeshError(f"--subject {subject}: not in {path} (it holds {', '.join(templates)})")
            vertices, faces = templates[subject], self.faces
        if len(vertices) != self.model.cfg.num_vertices:
            raise MeshError(
                f"--template_path {path}: {len(vertices)} vertices; the model was trained on "
                f"{self.model.cfg.num_vertices}"
            )
        return vertices, faces

    def style_index(self, style: str | None) -> int:
        if style is None:
            return 0
        if style not in self.styles:
            raise MeshError(f"--style {style}: not a training subject of this model ({', '.join(self.styles)})")
        return self.styles.index(style)

    @torch.no_grad()
    def predict(self, wav: np.ndarray, template: np.ndarray, style: str | None = None) -> np.ndarray:
        """16 kHz samples + (V, 3) template -> (frames, V*3) float32 vertices."""
        frames = motion_frames(len(wav), self.fps)
        if frames < 2:
            raise MeshError(f"the speech is too short: {len(wav) / 16000:.2f} s gives {frames} frame(s)")
        audio = torch.from_numpy(encoder_input(wav, self.model.cfg.audio_encoder))[None].to(self.device)
        onehot = torch.zeros(1, len(self.styles), device=self.device)
        onehot[0, self.style_index(style)] = 1
        flat = torch.from_numpy(np.asarray(template, dtype=np.float32).reshape(1, -1)).to(self.device)
        return self.model(audio, frames, flat, onehot)["vertices"][0].float().cpu().numpy()

    def render(
        self,
        audio_path: str | Path,
        save_path: str | Path,
        template: str | Path,
        subject: str | None = None,
        style: str | None = None,
        save_meshes: str | Path | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        size: int = DEFAULT_SIZE,
    ) -> MeshResult:
        """Speech file -> save_path (.mp4: H.264 + AAC render at the model's fps) and its .npy beside it
        (frames x V*3); `save_meshes`: also a PLY per frame in that folder. Each file appears whole or not at all."""
        save_path = Path(save_path)
        vertices, faces = self.template(template, subject)
        if faces is None:
            raise MeshError(f"--template_path {template}: no triangles to render (give a .ply/.obj mesh)")
        style = style or (subject if subject in self.styles else None)
        self.style_index(style)
        frames = self.predict(load_speech(audio_path), vertices, style)
        npy = save_path.with_suffix(".npy")
        renderer = MeshRenderer(faces, vertices, size)
        with VideoWriter(save_path, fps=self.fps, audio_path=audio_path, num_frames=len(frames)) as writer:
            for i, frame in enumerate(frames):
                writer.write(renderer.render(frame))
                raise_if_interrupted()
                if on_progress:
                    on_progress(i + 1, len(frames))
        with write_atomically(npy) as f:
            np.save(f, frames)
        if save_meshes:
            folder = Path(save_meshes)
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(frames):
                write_ply(folder / f"{save_path.stem}_{i:05d}.ply", frame, faces)
        return MeshResult(save_path, npy, len(frames), self.fps, Path(save_meshes) if save_meshes else None)
