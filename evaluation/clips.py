"""Reading the clips to score and pairing generated with reference clips (by file stem)."""

from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from edtalk.audio import load_wav
from edtalk.errors import AudioError, EDTalkError
from edtalk.video_io import MediaError, has_audio_stream, iter_frames

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
FPS = 25.0  # every metric works on 25-fps frames, the rate of our renders and of SyncNet


@dataclass
class Clip:
    """One decoded clip: frames (T, H, W, 3) uint8 RGB at 25 fps, the file's own fps, frame count and
    duration (container metadata), and its 16 kHz mono soundtrack (n,) float32 (None if silent)."""

    path: Path
    frames: np.ndarray
    native_fps: float
    native_frames: int
    duration: float
    audio: np.ndarray | None


def _metadata(path: Path) -> dict:
    """ffmpeg's metadata of a video (fps, duration); MediaError for a missing or unreadable file."""
    if not path.is_file():
        raise MediaError(f"video not found: {path}")
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
    except (OSError, RuntimeError, StopIteration):
        raise MediaError(f"cannot read video {path}: not a video ffmpeg can decode") from None
    return meta


def read_clip(path: str | Path) -> Clip:
    """Decode a video for scoring (see Clip); MediaError / AudioError name the file."""
    path = Path(path)
    meta = _metadata(path)
    native = np.stack(list(iter_frames(path, fps=None)))
    fps = float(meta.get("fps") or 0.0)
    frames = native if abs(fps - FPS) < 1e-3 else np.stack(list(iter_frames(path, fps=FPS)))
    audio = None
    if has_audio_stream(path):
        try:
            audio = load_wav(path)
        except AudioError:
            audio = None
    return Clip(path, frames, fps, len(native), float(meta.get("duration") or 0.0), audio)


def pair_clips(generated: str | Path, reference: str | Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Videos of the `generated` folder paired with the `reference` video of the same stem.

    Returns (pairs sorted by stem, one line per generated video without a reference). EDTalkError
    if a folder is missing or no pair is found.
    """
    folders = {"generated": Path(generated), "reference": Path(reference)}
    for what, folder in folders.items():
        if not folder.is_dir():
            raise EDTalkError(f"{what} folder not found: {folder}")
    refs = {p.stem: p for p in sorted(folders["reference"].iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS}
    pairs, unpaired = [], []
    for p in sorted(folders["generated"].iterdir()):
        if p.suffix.lower() not in VIDEO_EXTENSIONS:
            continue
        if p.stem in refs:
            pairs.append((p, refs[p.stem]))
        else:
            unpaired.append(f"{p.name}: no reference video named {p.stem}.* in {folders['reference']}")
    if not pairs:
        raise EDTalkError(
            f"no generated video in {folders['generated']} has a reference of the same name in {reference}"
        )
    return pairs, unpaired


def integrity_checks(generated: Clip, reference: Clip, fps: float = FPS) -> list[str]:
    """Problems that mark a broken output: wrong frame rate, frame count or duration unlike the
    reference's (more than one frame apart), no soundtrack where the reference has one."""
    problems = []
    if abs(generated.native_fps - fps) > 1e-3:
        problems.append(f"frame rate {generated.native_fps:g} fps, expected {fps:g}")
    if abs(generated.native_frames / max(generated.native_fps, 1e-6) - len(reference.frames) / fps) > 1.0 / fps + 1e-6:
        problems.append(
            f"{generated.native_frames} frames at {generated.native_fps:g} fps; reference has {len(reference.frames)}"
        )
    if abs(generated.duration - reference.duration) > 1.0 / fps + 0.05:
        problems.append(f"duration {generated.duration:.2f} s, reference {reference.duration:.2f} s")
    if generated.audio is None and reference.audio is not None:
        problems.append("no soundtrack (the reference has one)")
    return problems
