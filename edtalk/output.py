"""Rendering one clip into an mp4 file: the write loop that the demos, render_many.py and the web
UI share, and the summary of what was written."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .device import precision_name
from .options import RenderOptions
from .pipeline import TalkingHeadPipeline
from .video_io import VideoWriter


@dataclass
class Written:
    """An mp4 that `write_mp4` wrote: `frames` frames at `fps`, `size` (height, width), its soundtrack,
    the generator's runtime ('torch' or 'openvino') and the precision the networks ran in ('fp32',
    'bf16' or 'fp16')."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    soundtrack: Path | None
    backend: str
    precision: str

    def __str__(self) -> str:
        (h, w), n, fps = self.size, self.frames, self.fps
        sound = self.soundtrack.name if self.soundtrack else "none"
        return (
            f"wrote {self.path}: {n} frames, {n / fps:.2f} s, {w}x{h}, {fps:g} fps, soundtrack: {sound}, "
            f"backend: {self.backend}, precision: {self.precision}"
        )


def write_mp4(
    pipe: TalkingHeadPipeline,
    save_path: Path,
    on_batch: Callable[[int, int], None] | None = None,
    request: RenderOptions | None = None,
    **inputs,
) -> Written:
    """Render `request` (or RenderOptions(**inputs): TalkingHeadPipeline.render's arguments) into the
    mp4 `save_path` (already checked by check_save_path).

    on_batch(frames written, total) runs after every batch (progress, a cancel or signal check):
    an exception it raises stops the render, and the writer removes its unfinished file (the
    clip's temporary files go too). It also runs after the last batch, before the file appears.
    """
    with (
        pipe.render(request or RenderOptions(**inputs)) as result,
        VideoWriter(save_path, result.fps, result.audio_path, num_frames=result.num_frames) as writer,
    ):
        for frames in result.frames:
            writer.write(frames)
            if on_batch is not None:
                on_batch(writer.frames_written, result.num_frames)
    precision = precision_name(pipe.precision)
    size = writer.size
    return Written(save_path, writer.frames_written, result.fps, size, result.audio_path, pipe.backend.name, precision)
