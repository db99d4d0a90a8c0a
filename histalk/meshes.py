"""Mesh files: templates.pkl (subject -> (V, 3)), .ply/.obj meshes, region files; binary PLY writing."""

import pickle
from pathlib import Path

import numpy as np

from edtalk.errors import EDTalkError
from edtalk.files import write_atomically


class MeshError(EDTalkError):
    """A template, mesh, region or dataset file that cannot be used (one-line message)."""


def read_templates(path: str | Path) -> dict[str, np.ndarray]:
    """templates.pkl -> {subject: (V, 3) float32} (pickles written by Python 2 are read too)."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such templates file")
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
        return {str(k): np.asarray(v, dtype=np.float32).reshape(-1, 3) for k, v in data.items()}
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as err:
        raise MeshError(f"{path}: not a templates.pkl (subject -> vertices): {err}") from None


def write_templates(path: str | Path, templates: dict[str, np.ndarray]) -> None:
    with write_atomically(path) as f:
        pickle.dump({k: np.asarray(v, dtype=np.float32) for k, v in templates.items()}, f)


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A .ply or .obj mesh -> (vertices (V, 3) float32, triangles (F, 3) int64; (0, 3) for a point cloud)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such mesh file")
    try:
        mesh = trimesh.load(path, process=False, force="mesh")
    except Exception as err:  # trimesh raises many kinds for unreadable files
        raise MeshError(f"{path}: cannot read the mesh: {err}") from None
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float32)
    if len(vertices) == 0:
        raise MeshError(f"{path}: the mesh has no vertices")
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    return vertices, faces


def write_ply(path: str | Path, vertices: np.ndarray, faces: np.ndarray | None = None) -> None:
    """Binary little-endian PLY of vertices (V, 3) and triangles (F, 3), written atomically."""
    vertices = np.asarray(vertices, dtype="<f4").reshape(-1, 3)
    faces = np.zeros((0, 3), dtype=np.int64) if faces is None else np.asarray(faces).reshape(-1, 3)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    rows = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    rows["n"], rows["v"] = 3, faces
    with write_atomically(path) as f:
        f.write(header.encode("ascii"))
        f.write(vertices.tobytes())
        f.write(rows.tobytes())


def read_region(path: str | Path, num_vertices: int) -> np.ndarray:
    """Vertex indices of a region file: CodeTalker's comma-separated indices (lve.txt, fdd.txt), or
    FLAME's mask as .npy/.pkl (an index array, or a {name: indices} dict whose 'lips' entry is used)."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such region file")
    if path.suffix in (".npy", ".pkl"):
        with open(path, "rb") as f:
            data = np.load(f, allow_pickle=True) if path.suffix == ".npy" else pickle.load(f, encoding="latin1")
        if getattr(data, "shape", None) == ():
            data = data.item()
        if isinstance(data, dict):
            if "lips" not in data:
                raise MeshError(f"{path}: a mask dict without a 'lips' entry (has {', '.join(map(str, data))})")
            data = data["lips"]
        indices = np.asarray(data).astype(np.int64).ravel()
    else:
        try:
            indices = np.array([int(x) for x in path.read_text().replace("\n", ",").split(",") if x.strip()])
        except ValueError:
            raise MeshError(f"{path}: expected comma-separated vertex indices") from None
    if len(indices) == 0 or indices.min() < 0 or indices.max() >= num_vertices:
        raise MeshError(f"{path}: indices must lie in 0..{num_vertices - 1} (the mesh has {num_vertices} vertices)")
    return indices
