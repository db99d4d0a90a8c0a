#!/usr/bin/env python3
"""VOCASET or BIWI as their owners release them -> the FaceFormer layout HiSTalk trains on.

    python data_preprocess/prepare_mesh_data.py --dataset vocaset|biwi --input DIR --output SET

Output: SET/wav/<subject>_<sentence>.wav, SET/vertices_npy/<same>.npy (frames x V*3 float32),
SET/templates.pkl (subject -> (V, 3)), SET/templates/*.ply. Inputs read:
- VOCASET: data_verts.npy (all frames, (N, 5023, 3)), subj_seq_to_idx.pkl (subject -> sentence ->
  {frame: row of data_verts}), raw_audio_fixed.pkl (subject -> sentence -> {'audio', 'sample_rate'}),
  templates.pkl, and templates/*.ply if present. Captured at 60 fps; every second frame is kept (30 fps).
- BIWI: faces/<subject>/<sentence>/*.vl, the tracked geometry at 25 fps, one binary file per frame
  (little-endian uint32 vertex count, then count x 3 float32 x, y, z); rigid_scans/<subject>.obj,
  the neutral templates (their triangles become templates/BIWI.ply); wav/<subject>_<sentence>.wav or
  wav/<subject>/<sentence>.wav. Sentence folders '01' are named 'e01'.
A folder already in the FaceFormer layout (wav/, vertices_npy/, templates.pkl) is used as is: copied
to --output, or left alone when --output is the same folder.
"""

import argparse
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edtalk.errors import EDTalkError  # noqa: E402
from edtalk.files import write_atomically  # noqa: E402
from histalk.meshes import MeshError, read_mesh, write_ply, write_templates  # noqa: E402


def _pickle(path: Path):
    if not path.is_file():
        raise MeshError(f"{path}: missing (expected in a VOCASET release)")
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _save_clip(out: Path, name: str, vertices: np.ndarray, audio: np.ndarray, sample_rate: int) -> None:
    with write_atomically(out / "vertices_npy" / f"{name}.npy") as f:
        np.save(f, np.asarray(vertices, dtype=np.float32).reshape(len(vertices), -1))
    with write_atomically(out / "wav" / f"{name}.wav") as f:
        soundfile.write(f, np.asarray(audio, dtype=np.float32).ravel(), int(sample_rate), format="WAV")


def convert_vocaset(src: Path, out: Path) -> int:
    """Returns the number of clips written."""
    data_verts = src / "data_verts.npy"
    if not data_verts.is_file():
        raise MeshError(f"{data_verts}: missing (expected in a VOCASET release)")
    verts = np.load(data_verts, mmap_mode="r")
    index, audio = _pickle(src / "subj_seq_to_idx.pkl"), _pickle(src / "raw_audio_fixed.pkl")
    write_templates(
        out / "templates.pkl", {k: np.asarray(v).reshape(-1, 3) for k, v in _pickle(src / "templates.pkl").items()}
    )
    for ply in sorted((src / "templates").glob("*.ply")) if (src / "templates").is_dir() else []:
        shutil.copy2(ply, out / "templates" / ply.name)
    count = 0
    for subject, sentences in index.items():
        for sentence, frames in sentences.items():
            if sentence not in audio.get(subject, {}):
                continue
            rows = [frames[k] for k in sorted(frames)][::2]  # 60 fps -> 30 fps
            clip = audio[subject][sentence]
            _save_clip(out, f"{subject}_{sentence}", verts[rows], clip["audio"], clip["sample_rate"])
            count += 1
    return count


def read_vl(path: Path) -> np.ndarray:
    """One BIWI .vl frame -> (V, 3) float32."""
    raw = path.read_bytes()
    count = int(np.frombuffer(raw[:4], dtype="<u4")[0]) if len(raw) >= 4 else -1
    if count <= 0 or len(raw) != 4 + 12 * count:
        raise MeshError(f"{path}: not a BIWI .vl frame (uint32 count + count x 3 float32)")
    return np.frombuffer(raw[4:], dtype="<f4").reshape(count, 3)


def _biwi_audio(src: Path, subject: str, sentence: str) -> Path | None:
    for path in (src / "wav" / f"{subject}_{sentence}.wav", src / "wav" / subject / f"{sentence}.wav"):
        if path.is_file():
            return path
    return None


def convert_biwi(src: Path, out: Path) -> int:
    faces_dir, scans = src / "faces", src / "rigid_scans"
    if not faces_dir.is_dir() or not scans.is_dir():
        raise MeshError(f"{src}: a BIWI release needs faces/ and rigid_scans/")
    templates, triangles = {}, None
    for obj in sorted(scans.glob("*.obj")):
        templates[obj.stem], faces = read_mesh(obj)
        triangles = faces if triangles is None and len(faces) else triangles
    count = 0
    for subject_dir in sorted(p for p in faces_dir.iterdir() if p.is_dir()):
        for sentence_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            subject, sentence = subject_dir.name, sentence_dir.name
            sentence = f"e{sentence}" if sentence.isdigit() else sentence
            wav = _biwi_audio(src, subject, sentence)
            frames = sorted(sentence_dir.glob("*.vl"))
            if wav is None or not frames or subject not in templates:
                continue
            audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
            _save_clip(out, f"{subject}_{sentence}", np.stack([read_vl(f) for f in frames]), audio.mean(axis=1), rate)
            count += 1
    write_templates(out / "templates.pkl", templates)
    if triangles is not None:
        write_ply(out / "templates" / "BIWI.ply", next(iter(templates.values())), triangles)
    return count


def in_layout(folder: Path) -> bool:
    return all((folder / p).exists() for p in ("wav", "vertices_npy", "templates.pkl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=("vocaset", "biwi"))
    parser.add_argument("--input", required=True, help="the dataset as released (or a FaceFormer-layout folder)")
    parser.add_argument("--output", required=True, help="the FaceFormer-layout folder to write")
    args = parser.parse_args(argv)
    src, out = Path(args.input), Path(args.output)
    try:
        if not src.is_dir():
            raise MeshError(f"--input {src}: no such folder")
        if in_layout(src):
            same = src.resolve() == out.resolve()
            if not same:
                shutil.copytree(src, out, dirs_exist_ok=True)
            print(f"{src} is already in the FaceFormer layout: {'used as is' if same else f'copied to {out}'}")
            return 0
        for sub in ("wav", "vertices_npy", "templates"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        count = (convert_vocaset if args.dataset == "vocaset" else convert_biwi)(src, out)
        if count == 0:
            raise MeshError(f"--input {src}: no clip with both geometry and audio found")
    except (EDTalkError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {count} clips to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
