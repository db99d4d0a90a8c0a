"""Rendering: the generate loop (the generator backend, then face restoration, then paste-back)
and the lazy `Rendering` it feeds."""

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .crop_geometry import CROP_SIZE
from .face_paste import paste_back
from .face_sr import FaceRestorer
from .inputs import Source
from .torch_backend import GeneratorBackend


def pingpong(i: np.ndarray | int, n: int) -> np.ndarray | int:
    """Index into an n-frame clip played forwards, backwards, forwards... (turning frames repeated)."""
    j = np.asarray(i) % (2 * n)
    return np.where(j < n, j, 2 * n - 1 - j)


def pick(coefs: torch.Tensor | None, idx: np.ndarray) -> torch.Tensor | None:
    """Rows of a per-frame coefficient track for output frames `idx` (ping-pong); (1, dim) broadcasts."""
    if coefs is None or len(coefs) == 1:
        return coefs
    return coefs[torch.as_tensor(pingpong(idx, len(coefs)), device=coefs.device)]


@dataclass
class Rendering:
    """A lazily rendered clip: iterate `frames` for (b, H, W, 3) uint8 batches. Use it as a context
    manager (or call `close`) so that its temporary files go as soon as it is done or abandoned."""

    frames: Iterator[np.ndarray]
    num_frames: int
    fps: float
    size: tuple[int, int]  # (height, width)
    audio_path: Path | None
    storage: list[tempfile.TemporaryDirectory] = field(default_factory=list)  # a re-dubbed video's frames...

    def close(self) -> None:
        """Stop generating and remove the temporary files behind the clip."""
        self.frames.close()
        for folder in self.storage:
            folder.cleanup()

    def __enter__(self) -> "Rendering":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def output_size(src: Source, paste: bool, restorer: FaceRestorer | None) -> tuple[int, int]:
    """(height, width) of the rendered frames: the original frames (paste-back) or the crops (x2 restored)."""
    if paste:
        return tuple(src.originals.shape[1:3])
    side = CROP_SIZE * (2 if restorer else 1)
    return side, side


def generate(
    backend: GeneratorBackend,
    src: Source,
    lip: torch.Tensor,
    pose: torch.Tensor | None,
    exp: torch.Tensor | None,
    restorer: FaceRestorer | None,
    batch_size: int,
    bar: Callable[[int], tqdm],
) -> Iterator[np.ndarray]:
    """Yield (b, H, W, 3) uint8 batches of len(lip) frames; source, pose and expression are indexed
    ping-pong. Each batch: the backend animates the crops, `restorer` (if any) restores the faces at
    twice their size, and with the source's originals the faces are pasted back into them.
    `bar(total)` makes the progress bar."""
    total = len(lip)
    if restorer is not None:
        restorer.reset()
    shared = None if src.is_video else backend.encode_source(src.crops)
    progress = bar(total)
    try:
        for start in range(0, total, batch_size):
            idx = np.arange(start, min(total, start + batch_size))
            src_idx = pingpong(idx, len(src.crops))
            encoded = shared if shared is not None else backend.encode_source(src.crops[src_idx])
            frames = backend.animate(
                encoded, lip[torch.as_tensor(idx, device=lip.device)], pick(pose, idx), pick(exp, idx)
            )
            if restorer is not None:
                frames = restorer.restore(frames)  # the crops restored at twice their size
            if src.originals is not None:
                to_crop = np.diag([CROP_SIZE / frames.shape[2], CROP_SIZE / frames.shape[1], 1.0])
                frames = np.stack(
                    [paste_back(src.originals[j], f, src.matrices[j] @ to_crop) for j, f in zip(src_idx, frames)]
                )
            progress.update(len(idx))
            yield frames
    finally:
        progress.close()
