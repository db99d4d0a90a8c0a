"""Reading images and videos, and writing H.264 + AAC mp4 files atomically.

ffmpeg comes from the imageio-ffmpeg wheel (no system install). Frames are (H, W, 3) uint8 RGB.
"""

import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import EDTalkError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def _not_a_turned_video(record: logging.LogRecord) -> bool:
    """Drops imageio-ffmpeg's warning that a video is read at another frame size than its stream's
    when the two are each other turned by 90 degrees: ffmpeg turned a phone video upright, as it
    should (the frames' size is the upright one). Any other size mismatch is still shown."""
    sizes = re.fullmatch(
        r"The frame size for reading \((\d+), (\d+)\) is different from the source frame size "
        r"\((\d+), (\d+)\)\.",
        record.getMessage(),
    )
    return not (sizes and sizes.group(1, 2) == sizes.group(4, 3))


logging.getLogger("imageio_ffmpeg").addFilter(_not_a_turned_video)


class MediaError(EDTalkError):
    """An image or video is missing, unreadable or empty."""


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise MediaError(f"{what} not found: {path}")


def is_image(path: str | Path) -> bool:
    """True for still-image files (by extension); everything else is treated as a video."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path) -> np.ndarray:
    """Any still image -> (H, W, 3) uint8 RGB, EXIF orientation applied."""
    path = Path(path)
    _require_file(path, "image")
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"cannot read image {path}: {exc}") from None


def _open(path: Path, output_params: list[str]):
    """Start decoding: (frame generator, metadata); MediaError for a missing or unreadable file."""
    _require_file(path, "video")
    try:
        reader = imageio_ffmpeg.read_frames(str(path), output_params=output_params)
        return reader, next(reader)
    except (OSError, RuntimeError, StopIteration) as exc:
        kinds = stream_kinds(path)
        if kinds and "Video" not in kinds:
            raise MediaError(f"video {path} has no frames (it holds only {', '.join(sorted(kinds)).lower()})") from None
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no video stream"
        raise MediaError(f"cannot read video {path}: {reason[:200]}") from None


def iter_frames(path: str | Path, fps: float | None = 25.0) -> Iterator[np.ndarray]:
    """Decode a video lazily as (H, W, 3) uint8 RGB frames, resampled to `fps` (None keeps the native rate).

    Raises MediaError for a missing or unreadable file, or one without video frames.
    """
    path = Path(path)
    reader, meta = _open(path, ["-vf", f"fps={fps}"] if fps else [])
    w, h = meta["size"]
    count = 0
    try:
        for raw in reader:
            count += 1
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    finally:
        reader.close()
    if count == 0:
        raise MediaError(f"video {path} has no frames")


def video_duration(path: str | Path) -> float:
    """Duration in seconds from the container metadata (0.0 if unknown)."""
    reader, meta = _open(Path(path), [])
    reader.close()
    return float(meta.get("duration") or 0.0)


def stream_kinds(path: str | Path) -> set[str]:
    """The kinds of streams ffmpeg finds in a file: a subset of {'Video', 'Audio', 'Subtitle', 'Data'}."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    return set(re.findall(r"Stream #\S+.*?: (\w+):", result.stderr))


def has_audio_stream(path: str | Path) -> bool:
    return "Audio" in stream_kinds(path)


def check_save_path(path: str | Path, create_folder: bool = False) -> Path:
    """Check, before any work, that an mp4 can be written at `path`; MediaError (one line) if not.

    The name must end in .mp4 and must not be a folder; its folder must exist (`create_folder`:
    missing folders are made) and accept a new file.
    """
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise MediaError(f"--save_path must end in .mp4 (the output is an H.264 + AAC mp4), got {path}")
    if path.is_dir():
        raise MediaError(f"--save_path {path} is a folder: give a file name ending in .mp4")
    folder = path.parent
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MediaError(f"cannot create the folder of --save_path {path}: {exc.strerror or exc}") from None
    if not folder.exists():
        raise MediaError(f"the folder of --save_path {path} does not exist: {folder}")
    if not folder.is_dir():
        raise MediaError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise MediaError(f"cannot write in {folder} ({exc.strerror or exc}): choose another --save_path") from None
    return path


class VideoWriter:
    """Writes an H.264 (yuv420p) mp4, optionally with an audio track re-encoded to AAC.

    Frames go to a hidden temporary file next to `path`, renamed to `path` only when the video is
    complete; on error the temporary file is deleted. Frames are handed to ffmpeg by a background
    thread, so generating the next batch overlaps with encoding this one. Use as a context manager:

        with VideoWriter("out.mp4", fps=25, audio_path="speech.wav", num_frames=n) as writer:
            writer.write(frames)  # (N, H, W, 3) or (H, W, 3) uint8

    The soundtrack is cut to the video's length: exactly when `num_frames` says how many frames
    will come, else where the video stream ends (ffmpeg's -shortest).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float = 25.0,
        audio_path: str | Path | None = None,
        crf: int = 18,
        num_frames: int | None = None,
    ):
        self.path = Path(path)
        self.fps = fps
        self.audio_path = audio_path
        self.crf = crf
        self.num_frames = num_frames
        self.frames_written = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}.mp4")
        self._size = None
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._thread = None
        self._error = None

    def __enter__(self) -> "VideoWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def _start(self, height: int, width: int) -> None:
        self._size = (height, width)
        pipe = imageio_ffmpeg.write_frames(
            str(self._tmp),
            (width + width % 2, height + height % 2),
            fps=self.fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-crf", str(self.crf), "-movflags", "+faststart", *self._audio_length()],
            audio_path=None if self.audio_path is None else str(self.audio_path),
            audio_codec="aac",
        )
        pipe.send(None)
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _audio_length(self) -> list[str]:
        """ffmpeg output options that end the soundtrack with the video."""
        if self.audio_path is None:
            return []
        if self.num_frames is not None:
            return ["-t", f"{self.num_frames / self.fps:.6f}"]
        return ["-shortest"]

    def _drain(self, pipe) -> None:
        """Background thread: send queued batches to ffmpeg until the None sentinel, then close."""
        try:
            while (frames := self._queue.get()) is not None:
                if self._error is None:
                    for frame in frames:
                        pipe.send(np.ascontiguousarray(frame))
        except Exception as exc:  # reported by the next write() or on exit
            self._error = exc
            while self._queue.get() is not None:  # keep the producer from blocking
                pass
        finally:
            try:
                pipe.close()
            except Exception as exc:  # ffmpeg gone (e.g. Ctrl-C reached it too): reported on exit
                self._error = self._error or exc

    @property
    def size(self) -> tuple[int, int] | None:
        """(height, width) of the written video: the frames' size, each side padded to even (None before a write)."""
        if self._size is None:
            return None
        h, w = self._size
        return h + h % 2, w + w % 2

    def write(self, frames: np.ndarray) -> None:
        if self._error is not None:
            raise MediaError(f"writing {self.path} failed: {self._error}")
        frames = frames[None] if frames.ndim == 3 else frames
        if self._thread is None:
            self._start(*frames.shape[1:3])
        if frames.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frames.shape[1:3]}")
        h, w = self._size
        if h % 2 or w % 2:  # yuv420p needs even sides: repeat the last row/column
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._queue.put(frames)
        self.frames_written += len(frames)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()  # ffmpeg finishes; on error the partial file is removed below
            if exc_type is None:
                if self._error is not None:
                    raise MediaError(f"writing {self.path} failed: {self._error}")
                if self.frames_written == 0:
                    raise MediaError(f"no frames were rendered; {self.path} not written")
                if not self._tmp.is_file() or self._tmp.stat().st_size == 0:  # ffmpeg stopped without a word
                    raise MediaError(f"ffmpeg could not write {self.path} (its message is above)")
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()
