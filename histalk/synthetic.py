"""A small synthetic set in the FaceFormer layout whose mouth follows a known function of the speech.

Each clip's speech is a 220 Hz tone (with harmonics) whose loudness follows a slow envelope a(t)
in [0, 1]; the mouth vertices (the lower rows of a flat grid face) open by `amplitude * a(t)` along
-y, the rest stays still. Used by the tests and benchmarks/bench_histalk.py.
"""

from pathlib import Path

import numpy as np
import soundfile

from .meshes import write_ply, write_templates

SAMPLE_RATE = 16000


def grid_face(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """A bumped rows x cols grid in the x-y plane facing +z: (V, 3) vertices and (F, 3) triangles."""
    y, x = np.meshgrid(np.linspace(1, -1, rows), np.linspace(-1, 1, cols), indexing="ij")
    z = 0.3 * np.exp(-(x**2 + y**2))
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float32)
    index = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return vertices, faces


def make_synthetic_set(
    root: str | Path,
    subjects: tuple[str, ...] = ("F2", "F3"),
    sentences: int = 8,
    seconds: float = 2.0,
    fps: float = 25.0,
    rows: int = 8,
    cols: int = 10,
    amplitude: float = 0.2,
    seed: int = 0,
) -> dict:
    """Write wav/, vertices_npy/, templates.pkl, templates/face.ply and regions/{lve,fdd}.txt under root.
    Returns {'clips': names, 'mouth': mouth vertex indices, 'faces': triangles}."""
    root = Path(root)
    for sub in ("wav", "vertices_npy", "templates", "regions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base, faces = grid_face(rows, cols)
    mouth = np.arange((rows - rows // 3) * cols, rows * cols)
    upper = np.arange(0, (rows // 3) * cols)
    templates, clips = {}, []
    frames = int(seconds * fps)
    for s, subject in enumerate(subjects):
        template = base + np.float32(0.05 * s)
        templates[subject] = template
        for e in range(1, sentences + 1):
            name = f"{subject}_e{e:02d}"
            freq, phase = rng.uniform(0.7, 2.5), rng.uniform(0, 2 * np.pi)
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * freq * t + phase)
            tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in (1, 2, 3))
            soundfile.write(root / "wav" / f"{name}.wav", (0.3 * envelope * tone).astype(np.float32), SAMPLE_RATE)
            a = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.arange(frames) / fps) + phase)
            motion = np.zeros((frames, len(template), 3), dtype=np.float32)
            motion[:, mouth, 1] = -amplitude * a[:, None]
            np.save(root / "vertices_npy" / f"{name}.npy", (template + motion).reshape(frames, -1))
            clips.append(name)
    write_templates(root / "templates.pkl", templates)
    write_ply(root / "templates" / "face.ply", base, faces)
    (root / "regions" / "lve.txt").write_text(", ".join(map(str, mouth)))
    (root / "regions" / "fdd.txt").write_text(", ".join(map(str, upper)))
    return {"clips": clips, "mouth": mouth, "faces": faces}
