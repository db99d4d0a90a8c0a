"""A live talking head: push speech as it arrives, get 25-fps frames of the source photo speaking it.

    session = LiveSession("photo.jpg", PipelineOptions(ckpt_dir="ckpts"), LiveOptions())
    for chunk in microphone():                       # mono float32 chunks of any size
        for frame in session.push(chunk, 48000):
            show(frame.image, frame.start_s)          # (256, 256, 3) uint8, the audio span it shows
    for frame in session.close():                     # the last frames (the look-ahead's)
        show(frame.image, frame.start_s)

Audio at another rate is resampled on the fly (soxr) to 16 kHz; every timestamp is on that 16 kHz
sample clock. Features are causal with a fixed look-ahead (edtalk/live/features.py and
edtalk/live/lip.py; docs/live.md gives the numbers); the mouth coefficients equal the offline
pipeline's in the exact mode. The head moves with the speech (Audio2Pose at a low temperature)
when that checkpoint is present, else it stays still; when the speech stops the mouth closes.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from .. import audio as audio_io
from ..backends import make_backend
from ..checkpoints import (
    AUDIO2POSE_FILE,
    EXPRESSION_DIR,
    load_audio2lip,
    load_audio2pose,
    load_expression_weights,
    load_generator,
)
from ..device import resolve_device, resolve_precision
from ..emotions import parse_emotion_mix
from ..errors import AudioError, EDTalkError
from ..face_align import FaceAligner
from ..inputs import check_source_array, whole_frame
from ..options import PipelineOptions
from ..pipeline import MODEL_FILES
from ..video_io import read_image
from .features import CFG, EXACT_LOOKAHEAD, FPS, FRAME_SAMPLES, LOW_LOOKAHEAD, StreamingMel
from .lip import StreamingLip
from .options import LiveOptions
from .pacing import FramePacer


@dataclass
class LiveFrame:
    """One output frame: `image` (256, 256, 3) RGB uint8 showing the audio samples [start, end)
    of the 16 kHz stream; `lip` (20,) its mouth coefficients."""

    index: int
    image: np.ndarray
    lip: np.ndarray

    @property
    def start(self) -> int:
        return self.index * FRAME_SAMPLES

    @property
    def end(self) -> int:
        return (self.index + 1) * FRAME_SAMPLES

    @property
    def start_s(self) -> float:
        return self.start / CFG.sample_rate

    @property
    def end_s(self) -> float:
        return self.end / CFG.sample_rate


class LiveSession:
    """One source photo animated by a stream of speech (see the module docstring).

    source: a photo (path) or an RGB uint8 (H, W, 3) array. pipeline: checkpoints, model, device,
    precision, backend (`auto`: OpenVINO on the CPU), cropping (PipelineOptions; None: the defaults).
    live: look-ahead, silence, head motion (LiveOptions).
    renderer: a generator backend (`encode_source`, `animate`, `motion`, as edtalk.torch_backend),
    instead of the one loaded from the checkpoints; clock: seconds, for pacing (tests fake it).
    """

    def __init__(
        self,
        source,
        pipeline: PipelineOptions | None = None,
        live: LiveOptions | None = None,
        renderer=None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        pipeline, live = pipeline or PipelineOptions(), live or LiveOptions()
        live.check()
        ckpt_dir = Path(pipeline.ckpt_dir)
        device = resolve_device(pipeline.device)
        if renderer is None:
            path = Path(pipeline.generator_path or ckpt_dir / MODEL_FILES[pipeline.model])
            generator = load_generator(path, device, kind=pipeline.model)
            precision = resolve_precision(pipeline.precision, device)
            options = dict(compile=pipeline.compile, cuda_graphs=pipeline.cuda_graphs)
            renderer = make_backend(generator, pipeline.model, device, precision, pipeline.backend, **options)
        self.renderer, self.device = renderer, renderer.device
        crop = _source_crop(source, pipeline)
        self.encoded = renderer.encode_source(crop[None])
        self.exp = self._expression(live.exp_type, ckpt_dir)
        exact = live.latency == "exact"
        self.mel = StreamingMel(EXACT_LOOKAHEAD if exact else LOW_LOOKAHEAD)
        audio2lip = load_audio2lip(pipeline.audio2lip_path or ckpt_dir / "Audio2Lip.pt", self.device)
        silence = None if live.silence_db is None else 10 ** (live.silence_db / 20)
        self.lip = StreamingLip(audio2lip, self.device, exact, silence)
        self.pose, self.poses = None, []
        pose_path = Path(pipeline.audio2pose_path or ckpt_dir / AUDIO2POSE_FILE)
        if live.pose == "audio" or (live.pose == "auto" and pose_path.is_file()):
            model = load_audio2pose(pose_path, self.device)
            start = renderer.motion(crop[None], ["pose"])["pose"][0].float()
            self.pose = model.stream(start, None, live.pose_temperature, live.seed)
            lag = model.context - (self.lip.half if exact else 0)  # poses trail the mouth by this many frames
            self.poses = [start] * max(0, lag)
        self._warm_up()
        self.pacer = FramePacer(FPS, clock)
        self.resampler, self.sample_rate = None, None
        self.closed = False

    def _warm_up(self) -> None:
        """Run every stage once before the stream starts, so that no first call's setup (librosa's
        JIT, CPU kernel plans, OpenVINO's compilation) is charged to the live frames."""
        audio_io.melspectrogram(np.zeros(4 * FRAME_SAMPLES, np.float32))
        pose = self.poses[0][None] if self.poses else None
        self.renderer.animate(self.encoded, self.lip.rest[None], pose, self.exp)

    def _expression(self, spec: str | None, ckpt_dir: Path) -> torch.Tensor | None:
        """(1, 10) coefficients of a predefined emotion (mix), or None (the source's own expression)."""
        if not spec:
            return None
        if not self.renderer.config.has_expression:
            raise EDTalkError("an expression type needs the full generator EDTalk.pt (model 'full')")
        mix = parse_emotion_mix(spec)
        weights = load_expression_weights(ckpt_dir / EXPRESSION_DIR, tuple(mix))
        return sum(w * weights[name] for name, w in mix.items()).to(self.device)

    def push(self, samples: np.ndarray, sample_rate: int = CFG.sample_rate) -> list[LiveFrame]:
        """Add mono float32 samples (any number, at `sample_rate`, the same for the whole stream);
        -> the frames whose audio and look-ahead are now complete (those the pacer keeps)."""
        if self.closed:
            raise EDTalkError("this live session is closed")
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.dtype.kind != "f":
            raise AudioError(f"live audio must be mono float samples (n,), got {samples.dtype} {samples.shape}")
        with self.pacer.spending():
            windows = self.mel.push(self._resampled(samples.astype(np.float32, copy=False), sample_rate))
        return self._frames(*windows)

    def close(self) -> list[LiveFrame]:
        """End of the stream: the frames still held back by the look-ahead (the clip ends as the
        offline one does: whole frames only)."""
        if self.closed:
            return []
        with self.pacer.spending():
            parts = []
            if self.resampler is not None:  # the resampler's last samples may complete frames
                parts.append(self.mel.push(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)))
            parts.append(self.mel.finish())
        self.closed = True
        return self._frames(*(np.concatenate(column) for column in zip(*parts)), last=True)

    @property
    def stats(self) -> dict:
        """Frames so far: {'frames', 'rendered', 'dropped', 'achieved_fps' (rendered per second of audio)}."""
        p = self.pacer
        return {"frames": p.frames, "rendered": p.rendered, "dropped": p.dropped, "achieved_fps": p.achieved_fps}

    def _resampled(self, samples: np.ndarray, rate: int) -> np.ndarray:
        if self.sample_rate is None:
            if rate <= 0:
                raise AudioError(f"the sample rate must be positive, got {rate}")
            self.sample_rate = rate
            if rate != CFG.sample_rate:
                self.resampler = soxr.ResampleStream(rate, CFG.sample_rate, 1, dtype="float32", quality="HQ")
        elif rate != self.sample_rate:
            raise AudioError(f"the sample rate changed from {self.sample_rate} to {rate} Hz within one stream")
        return samples if self.resampler is None else self.resampler.resample_chunk(samples)

    def _frames(self, windows: np.ndarray, loudness: np.ndarray, last: bool = False) -> list[LiveFrame]:
        """Queue the new windows' frames (and their poses), then render the ready frames the pacer keeps."""
        with self.pacer.spending():
            ready = self.lip.push(windows, loudness)
            if last:
                ready = self.lip.finish()
            if self.pose is not None:
                tensor = torch.from_numpy(windows).to(self.device)
                self.poses.extend(self.pose.push(tensor)[0])
                if last:
                    self.poses.extend(self.pose.finish()[0])
        out = []
        for _ in range(ready):
            index = self.lip.next_frame
            pose = self.poses.pop(0)[None] if self.pose is not None else None
            if not self.pacer.keep():
                self.lip.skip()
                continue
            with self.pacer.spending():
                row = self.lip.next_row()
                image = self.renderer.animate(self.encoded, row[None], pose, self.exp)[0]
            out.append(LiveFrame(index, image, row.float().cpu().numpy()))
        return out


def _source_crop(source, pipeline: PipelineOptions) -> np.ndarray:
    """The (256, 256, 3) uint8 face crop of a photo path or an RGB array."""
    name = "the source image (array)" if isinstance(source, np.ndarray) else str(source)
    image = check_source_array(source) if isinstance(source, np.ndarray) else read_image(Path(source))
    if not pipeline.crop:
        return whole_frame(image, name)[0]
    return FaceAligner(face_index=pipeline.face_index).align(image, name).crop
