#!/usr/bin/env python3
"""Turn a folder of raw talking videos into an EDTalk training set (lmdb + train/val/test lists).

    python -m data_preprocess.prepare_dataset --input /data/MEAD_front --output /data/edtalk_mead
    python -m data_preprocess.prepare_dataset --input my_videos/ --output my_set/ --test_fraction 0.2

For each video: frames are resampled to 25 fps; faces are found every few frames and each
5-second clip gets one stable 256x256 crop (the median similarity transform onto the face
template, as the demos crop); the clip's frames (JPEG), 68-point landmarks tracked on the crops,
mouth boxes and the mel spectrogram of its audio go into `<output>/lmdb` (layout in
lmdb_store.py), and `<output>/lists/{train,val,test}.json` list the clip names. Test holds whole
persons/videos (no identity of it is trained on: the numbers reported on it are held out); val is
carved from the TRAINING persons' clips (a share of each training group's clips), so choosing the
best checkpoint on it never looks at the test clips. Re-running skips finished videos and rewrites
the lists; a corrupt or faceless video is logged (also to `<output>/prepare.log`) and skipped.
"""

import argparse
import itertools
import json
import logging
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edtalk import audio as audio_io
from edtalk.crop_geometry import similarity_transform, smooth_transforms, warp
from edtalk.errors import AudioError, EDTalkError
from edtalk.face_align import FaceAligner
from edtalk.video_io import iter_frames

from .lmdb_store import LmdbWriter, encode_jpeg, group_of
from .sources import RawVideo, find_videos

log = logging.getLogger("prepare_dataset")


@dataclass(frozen=True)
class PrepareConfig:
    fps: float = 25.0  # output frame rate
    size: int = 256  # crop side
    clip_seconds: float = 5.0  # long videos are cut into clips of this length
    min_clip_seconds: float = 3.0  # a shorter trailing piece is dropped
    min_video_seconds: float = 1.0  # a whole video shorter than this is skipped
    detect_every: int = 5  # frames between face detections when placing the crops
    redetect_every: int = 25  # landmark tracking re-runs the detector this often
    mouth_margin: int = 5  # pixels around landmarks 48-67 in the mouth boxes
    test_fraction: float = 0.1  # share of persons/videos in the test list
    val_fraction: float = 0.05  # share of each training person's/video's clips in the val list
    jpeg_quality: int = 95


def clip_ranges(num_frames: int, cfg: PrepareConfig) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the clips a video of `num_frames` frames is cut into."""
    full = int(round(cfg.clip_seconds * cfg.fps))
    if num_frames < cfg.min_video_seconds * cfg.fps:
        return []
    if num_frames <= full:
        return [(0, num_frames)]
    ranges = [(s, s + full) for s in range(0, num_frames - full + 1, full)]
    tail = num_frames - ranges[-1][1]
    if tail >= cfg.min_clip_seconds * cfg.fps:
        ranges.append((ranges[-1][1], num_frames))
    return ranges


def clip_names(stem: str, count: int) -> list[str]:
    return [stem] if count == 1 else [f"{stem}#{k}" for k in range(1, count + 1)]


def clip_crops(raw: RawVideo, aligner: FaceAligner, cfg: PrepareConfig) -> tuple[list, int]:
    """One stable crop matrix per clip (None where no face was found) and the frame count."""
    found, count = {}, 0
    for i, frame in enumerate(iter_frames(raw.video, cfg.fps)):
        count += 1
        if i % cfg.detect_every == 0:
            faces = aligner.landmarks(frame)
            if faces:
                found[i] = similarity_transform(faces[0])
    matrices = []
    for start, end in clip_ranges(count, cfg):
        inside = {i: m for i, m in found.items() if start <= i < end}
        matrices.append(smooth_transforms(inside, 1, None)[0] if inside else None)
    return matrices, count


def track_landmarks(crops: list[np.ndarray], aligner: FaceAligner, redetect_every: int) -> np.ndarray:
    """(T, 68, 2) landmarks on consecutive crops; NaN where the face is lost.

    The detector runs on the first frame and every `redetect_every` frames (or after a loss); in
    between the box follows the previous frame's landmarks, keeping its offset from them.
    """
    out = np.full((len(crops), 68, 2), np.nan, np.float32)
    offset = None  # detector box minus landmark bounding box, (4,)
    prev = None
    for t, crop in enumerate(crops):
        if prev is None or offset is None or t % redetect_every == 0:
            boxes = aligner.boxes(crop)
            if not boxes:
                prev = None
                continue
            box = np.array(boxes[0], float)
            shape = aligner.shape(crop, box)
            offset = box - _bbox(shape)
        else:
            shape = aligner.shape(crop, _bbox(prev) + offset)
        out[t] = shape
        prev = shape
    return out


def _bbox(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def mouth_boxes(landmarks: np.ndarray, margin: int) -> np.ndarray:
    """(T, 4) x1, y1, x2, y2 around landmarks 48-67, `margin` pixels wider on each side."""
    mouth = landmarks[:, 48:68]
    return np.concatenate([mouth.min(axis=1) - margin, mouth.max(axis=1) + margin], axis=1)


def load_audio(raw: RawVideo) -> np.ndarray | None:
    """16 kHz mono samples from the separate audio file or the video's own track (None if silent)."""
    try:
        return audio_io.load_wav(raw.audio or raw.video)
    except AudioError as exc:
        log.warning("%s: no usable audio (%s); its clips get no mel features", raw.key, exc)
        return None


def clip_mel(wav: np.ndarray | None, start: int, end: int, fps: float) -> np.ndarray | None:
    """Mel spectrogram of the audio under frames [start, end), zero-padded if the audio is shorter."""
    if wav is None:
        return None
    per_frame = audio_io.DEFAULT.sample_rate / fps
    a, b = int(round(start * per_frame)), int(round(end * per_frame))
    piece = wav[a:b]
    if len(piece) < b - a:
        piece = np.pad(piece, (0, b - a - len(piece)))
    return audio_io.melspectrogram(piece)


def process_video(raw: RawVideo, writer: LmdbWriter, aligner: FaceAligner, cfg: PrepareConfig) -> list[str]:
    """Write every clip of one video; returns the clip names written."""
    matrices, count = clip_crops(raw, aligner, cfg)
    ranges = clip_ranges(count, cfg)
    if not ranges:
        raise EDTalkError(f"only {count / cfg.fps:.1f} s long (minimum {cfg.min_video_seconds} s)")
    if all(m is None for m in matrices):
        raise EDTalkError("no face found")
    wav = load_audio(raw)
    names, written = clip_names(raw.stem, len(ranges)), []
    frames = iter_frames(raw.video, cfg.fps)
    for name, (start, end), matrix in zip(names, ranges, matrices):
        clip = list(itertools.islice(frames, end - start))
        if matrix is None:
            log.warning("%s: no face in frames %d-%d; clip %s skipped", raw.key, start, end - 1, name)
            continue
        crops = [warp(frame, matrix, cfg.size) for frame in clip]
        landmarks = track_landmarks(crops, aligner, cfg.redetect_every)
        mel = clip_mel(wav, start, end, cfg.fps)
        info = {
            "video": raw.key,
            "start_frame": start,
            "crop_matrix": matrix.tolist(),
            "group": group_of(name),
            "has_audio": mel is not None,
        }
        jpegs = [encode_jpeg(c, cfg.jpeg_quality) for c in crops]
        writer.write_clip(name, jpegs, landmarks, mouth_boxes(landmarks, cfg.mouth_margin), mel, info)
        written.append(name)
    frames.close()
    return written


def _share(key: str) -> float:
    """A deterministic number in [0, 1) for `key` (the same on every machine and run)."""
    return zlib.crc32(key.encode()) % 10000 / 10000


def split_names(names: list[str], test_fraction: float, val_fraction: float) -> dict[str, list[str]]:
    """Deterministic {train, val, test} lists. A group (person / source video) is wholly test or not;
    val takes a `val_fraction` share of the clips of the other groups (never a test group's clip)."""
    test = [n for n in names if _share(group_of(n)) < test_fraction]
    rest = [n for n in names if n not in set(test)]
    val = [n for n in rest if _share(f"val:{n}") < val_fraction]
    return {"train": [n for n in rest if n not in set(val)], "val": val, "test": test}


def prepare(
    input_dir: str | Path, output_dir: str | Path, cfg: PrepareConfig, layout: str = "auto", progress: bool = True
) -> dict:
    """Process every unfinished video; returns counts {done, skipped, failed, clips, train, val, test}."""
    output_dir = Path(output_dir)
    videos = find_videos(input_dir, layout)
    writer = LmdbWriter(output_dir / "lmdb", cfg.fps, cfg.size, cfg.clip_seconds)
    aligner = FaceAligner()
    counts = {"done": 0, "skipped": 0, "failed": 0}
    try:
        for raw in tqdm(videos, desc="videos", unit="video", disable=not progress):
            if writer.is_done(raw.key):
                counts["skipped"] += 1
                log.info("%s: already done, skipped", raw.key)
                continue
            try:
                names = process_video(raw, writer, aligner, cfg)
            except EDTalkError as exc:
                counts["failed"] += 1
                log.warning("skipped %s: %s", raw.key, exc)
                continue
            writer.finish_video(raw.key, names)
            counts["done"] += 1
        names = writer.finalize()
    finally:
        writer.close()
    splits = split_names(names, cfg.test_fraction, cfg.val_fraction)
    lists = output_dir / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    for split, items in splits.items():
        (lists / f"{split}.json").write_text(json.dumps(items, indent=0))
    counts.update(clips=len(names), **{split: len(items) for split, items in splits.items()})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="folder of raw videos (MEAD, HDTF or any layout)")
    parser.add_argument("--output", required=True, help="where the lmdb, lists and log go")
    parser.add_argument(
        "--layout", default="auto", choices=["auto", "mead", "hdtf", "flat"], help="input layout (default: auto)"
    )
    parser.add_argument(
        "--clip_seconds",
        type=float,
        default=PrepareConfig.clip_seconds,
        help="long videos are cut into clips of this many seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--test_fraction",
        type=float,
        default=PrepareConfig.test_fraction,
        help="share of persons/videos held out in the test list (default: %(default)s)",
    )
    parser.add_argument(
        "--val_fraction",
        type=float,
        default=PrepareConfig.val_fraction,
        help="share of the training persons' clips in the val list, for best.pt (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.FileHandler(output / "prepare.log"), logging.StreamHandler()],
    )
    logging.getLogger().handlers[1].setLevel(logging.WARNING)
    for flag in ("test_fraction", "val_fraction"):
        if not 0 <= getattr(args, flag) < 1:
            print(f"error: --{flag} must be in [0, 1), got {getattr(args, flag)}", file=sys.stderr)
            return 1
    cfg = PrepareConfig(
        clip_seconds=args.clip_seconds, test_fraction=args.test_fraction, val_fraction=args.val_fraction
    )
    try:
        counts = prepare(args.input, output, cfg, args.layout, progress=not args.quiet)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{counts['done']} videos processed, {counts['skipped']} already done, {counts['failed']} skipped on errors; "
        f"{counts['clips']} clips ({counts['train']} train, {counts['val']} val, {counts['test']} test) in {output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
