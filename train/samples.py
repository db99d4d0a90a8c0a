"""Sample grids: rows of images written as one PNG for looking at training progress."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def save_grid(rows: list[torch.Tensor], path: str | Path, max_columns: int = 4, size: int = 128) -> None:
    """rows: tensors (B, 3, H, W) in [-1, 1] (one row per tensor, up to `max_columns` images each)."""
    tiles = []
    for row in rows:
        images = row[:max_columns].detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().cpu()
        images = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="area").byte()
        tiles.append(np.concatenate(list(images.permute(0, 2, 3, 1).numpy()), axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path)
