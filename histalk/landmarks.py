"""The sparse landmarks HSF2S predicts, as (L, 3) vertex indices and (L, 3) barycentric weights.

- FLAME (VOCASET): the user's landmark embedding file (FLAME's `landmark_embedding.npy`, with
  'full_lmk_faces_idx'/'full_lmk_bary_coords' (68 points), or 'lmk_face_idx'/'lmk_b_coords') and the
  topology's triangles.
- Any other topology (BIWI, custom): `count` vertices chosen once by farthest-point sampling over
  the template, half of them inside the lip region when one is given (the mouth moves most), so the
  set is deterministic for a topology; it is stored in the checkpoint.
"""

from pathlib import Path

import numpy as np

from .meshes import MeshError


def farthest_points(points: np.ndarray, count: int, first: int) -> list[int]:
    """Indices of `count` points of (N, 3) `points` chosen greedily farthest apart, from index `first`."""
    chosen = [first]
    distance = np.linalg.norm(points - points[first], axis=1)
    for _ in range(min(count, len(points)) - 1):
        chosen.append(int(distance.argmax()))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def sampled_landmarks(template: np.ndarray, count: int, lips: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """`count` fixed vertices of a (V, 3) template: FPS over the lips for half (if given), then over the face."""
    centre = template.mean(axis=0)
    chosen: list[int] = []
    if lips is not None and len(lips):
        lip_points = template[lips]
        start = int(np.linalg.norm(lip_points - centre, axis=1).argmax())
        chosen = [int(lips[i]) for i in farthest_points(lip_points, min(count // 2, len(lips)), start)]
    rest = [
        i
        for i in farthest_points(template, count + len(chosen), int(np.linalg.norm(template - centre, axis=1).argmax()))
        if i not in chosen
    ]
    chosen += rest[: count - len(chosen)]
    vertices = np.repeat(np.array(chosen, dtype=np.int64)[:, None], 3, axis=1)
    weights = np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (len(chosen), 1))
    return vertices, weights


def embedded_landmarks(path: str | Path, faces: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """FLAME landmark embedding file + triangles (F, 3) -> (vertices (L, 3), weights (L, 3))."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"--landmark_embedding {path}: no such file")
    if faces is None:
        raise MeshError(f"--landmark_embedding {path}: needs the topology's triangles (templates/*.ply in the set)")
    data = np.load(path, allow_pickle=True)
    data = data.item() if getattr(data, "shape", None) == () else dict(data)
    for face_key, bary_key in (("full_lmk_faces_idx", "full_lmk_bary_coords"), ("lmk_face_idx", "lmk_b_coords")):
        if face_key in data:
            face_index = np.asarray(data[face_key]).astype(np.int64).ravel()
            weights = np.asarray(data[bary_key], dtype=np.float32).reshape(-1, 3)
            if face_index.max() >= len(faces):
                raise MeshError(f"--landmark_embedding {path}: face indices beyond the mesh's {len(faces)} triangles")
            return faces[face_index], weights
    raise MeshError(f"--landmark_embedding {path}: no 'full_lmk_faces_idx' or 'lmk_face_idx' entry")
