"""Head pose generated from speech by the Audio2Pose flow, streamed over the clip.

The audio is cut into mel windows a chunk at a time (`audio.mel_window_chunks`) and fed to the
flow's `PoseStream`, whose state (GRU, last poses, noise generator) carries across chunks, so
memory stays flat with the clip's length and the poses do not depend on the chunk size. The
result is a (T, 6) track of pose-bank coefficients, which the renderer takes as it takes a pose
video's.
"""

from pathlib import Path

import torch

from networks.audio2pose import Audio2Pose

from . import audio as audio_io
from .memory import release_free_memory


def pose_track(
    model: Audio2Pose,
    audio: str | Path,
    num_frames: int,
    start: torch.Tensor,
    style: torch.Tensor | None = None,
    temperature: float = 0.7,
    seed: int = 0,
    fps: float = 25.0,
    chunk: int = 256,
) -> torch.Tensor:
    """(num_frames, 6) pose coefficients for the frames of `audio` at `fps` (past its end the last
    window repeats), starting from `start` (6,) (e.g. the source's own pose).

    style: (13,) `pose_style` of a reference clip's poses, or None. temperature: spread of the
    sampled motion (0: the one deterministic path; 1: the trained distribution); seed: the noise.
    """
    wav, _ = audio_io.load_for_video(audio, fps)
    device = model.pose_mean.device
    with torch.inference_mode():
        stream = model.stream(start, style, temperature, seed)
        out = []
        for windows in audio_io.mel_window_chunks(wav, num_frames, fps, chunk):
            out.append(stream.push(torch.from_numpy(windows).to(device))[0])
            release_free_memory()  # else the freed chunks stay resident (see edtalk/memory.py)
        out.append(stream.finish()[0])
    return torch.cat(out)
