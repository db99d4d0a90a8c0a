"""The FaceFormer data layout and the dataset presets.

    SET/wav/<subject>_<sentence>.wav
    SET/vertices_npy/<subject>_<sentence>.npy   (frames, V*3) float32 at the set's fps
    SET/templates.pkl                           subject -> (V, 3)
    SET/templates/*.ply                         the topology's triangles (optional; used for rendering)

Presets follow FaceFormer's splits: VOCASET (5023 vertices, 30 fps, subjects split 8/2/2,
sentences 1-40 / 21-40 / 21-40) and BIWI (23370 vertices, 25 fps, subjects F2 F3 F4 M3 M4 M5,
sentences e01-e32 / e33-e36 / e37-e40: Test-A).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .meshes import MeshError, read_mesh, read_templates

VOCASET_TRAIN = (
    "FaceTalk_170728_03272_TA FaceTalk_170904_00128_TA FaceTalk_170725_00137_TA FaceTalk_170915_00223_TA "
    "FaceTalk_170811_03274_TA FaceTalk_170913_03279_TA FaceTalk_170904_03276_TA FaceTalk_170912_03278_TA"
).split()
VOCASET_VAL = ["FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"]
VOCASET_TEST = ["FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"]
BIWI_SUBJECTS = ["F2", "F3", "F4", "M3", "M4", "M5"]


@dataclass(frozen=True)
class Preset:
    num_vertices: int | None
    fps: float | None
    splits: dict  # split -> (subjects, sentences)


def _preset(num_vertices: int, fps: float, sentence: str, splits: dict[str, tuple[list[str], int, int]]) -> Preset:
    """A preset whose splits are {split: (subjects, first, last)}: those subjects' sentences
    `sentence.format(i)` for i in first..last (both included)."""
    return Preset(
        num_vertices,
        fps,
        {
            name: (subjects, [sentence.format(i) for i in range(first, last + 1)])
            for name, (subjects, first, last) in splits.items()
        },
    )


PRESETS = {
    "vocaset": _preset(
        5023,
        30.0,
        "sentence{:02d}",
        {"train": (VOCASET_TRAIN, 1, 40), "val": (VOCASET_VAL, 21, 40), "test": (VOCASET_TEST, 21, 40)},
    ),
    "biwi": _preset(
        23370,
        25.0,
        "e{:02d}",
        {"train": (BIWI_SUBJECTS, 1, 32), "val": (BIWI_SUBJECTS, 33, 36), "test": (BIWI_SUBJECTS, 37, 40)},
    ),
    "custom": Preset(None, None, {}),
}


def subject_of(clip: str) -> str:
    """'F2_e05' -> 'F2'; 'FaceTalk_170728_03272_TA_sentence01' -> 'FaceTalk_170728_03272_TA'."""
    return clip.rsplit("_", 1)[0]


def read_list(path: str | Path) -> list[str]:
    """Clip names, one per line (blank lines and '#' comments skipped; a trailing .npy/.wav dropped)."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such clip list")
    names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [n.removesuffix(".npy").removesuffix(".wav") for n in names if n]


def preset_clips(root: Path, dataset: str, split: str) -> list[str]:
    """The preset's clips of `split` that exist in `root`/vertices_npy."""
    subjects, sentences = PRESETS[dataset].splits[split]
    return [f"{s}_{e}" for s in subjects for e in sentences if (root / "vertices_npy" / f"{s}_{e}.npy").is_file()]


def all_clips(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "vertices_npy").glob("*.npy"))


def check_layout(root: str | Path) -> Path:
    """The dataset folder, checked to be in the FaceFormer layout (one-line MeshError otherwise)."""
    root = Path(root)
    for part in ("wav", "vertices_npy", "templates.pkl"):
        if not (root / part).exists():
            raise MeshError(
                f"{root}: not a FaceFormer-layout set (no {part}); see data_preprocess/prepare_mesh_data.py"
            )
    return root


def topology_faces(root: Path, num_vertices: int) -> np.ndarray | None:
    """Triangles of the first templates/*.ply (or .obj) with `num_vertices` vertices, or None."""
    for path in sorted((root / "templates").glob("*")) if (root / "templates").is_dir() else []:
        if path.suffix in (".ply", ".obj"):
            vertices, faces = read_mesh(path)
            if len(vertices) == num_vertices and len(faces):
                return faces
    return None


def load_templates(root: Path) -> dict[str, np.ndarray]:
    return read_templates(root / "templates.pkl")
