"""Inference pipeline: load the networks once, then turn photos/videos and audio into frame streams.

    pipe = TalkingHeadPipeline("ckpts", model="full", device="auto")
    with (
        pipe.render("photo.jpg", audio="speech.m4a", pose="head.mp4", exp_type="happy") as result,
        VideoWriter("out.mp4", result.fps, result.audio_path, num_frames=result.num_frames) as writer,
    ):
        for frames in result.frames:          # (b, H, W, 3) uint8 batches, produced lazily
            writer.write(frames)

`render` reads and checks every input before it returns (so a bad input fails before anything is
written), reduces driving videos to motion coefficients (a few numbers per frame), and returns a
lazy iterator: frames are generated batch by batch while they are consumed, so memory does not
grow with the length of the clip. The pipeline reads files but never writes any.
"""

import contextlib
import itertools
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from networks import Generator

from . import audio as audio_io
from .checkpoints import EXPRESSION_DIR, FULL, LIP_POSE, load_audio2lip, load_expression_weights, load_generator
from .device import resolve_device
from .emotions import check_expression_scale, parse_emotion_mix
from .errors import EDTalkError
from .face_align import (
    CROP_SIZE,
    FaceAligner,
    NoFaceError,
    paste_back,
    similarity_transform,
    smooth_transforms,
    warp,
)
from .face_sr import FaceRestorer
from .gfpgan import GFPGAN_FILE, load_gfpgan
from .memory import release_free_memory
from .video_io import has_audio_stream, is_image, iter_frames, read_image, to_uint8, video_duration

log = logging.getLogger(__name__)

FPS = 25.0
MODEL_FILES = {FULL: "EDTalk.pt", LIP_POSE: "EDTalk_lip_pose.pt"}
DETECTIONS_PER_CLIP = 32  # frames sampled to place one stable crop on a driving video
SOURCE_DETECTION_STRIDE = 5  # every 5th frame of a re-dubbed source video is detected...
SOURCE_SMOOTHING = 12.0  # ...and its crop smoothed with a Gaussian of 12 frames (0.5 s)


def pingpong(i: np.ndarray | int, n: int) -> np.ndarray | int:
    """Index into an n-frame clip played forwards, backwards, forwards... (turning frames repeated)."""
    j = np.asarray(i) % (2 * n)
    return np.where(j < n, j, 2 * n - 1 - j)


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] on `device`."""
    x = torch.from_numpy(np.require(frames, np.uint8, ["C", "W"])).to(device)
    return x.permute(0, 3, 1, 2).float().div(255).sub(0.5).mul(2)


class FrameStore:
    """Frames of one size appended to a temporary file and read back by index (bounded RAM)."""

    def __init__(self, folder: Path, name: str):
        self._path = folder / f"{name}.raw"
        self._file = open(self._path, "wb")
        self._shape = None
        self._count = 0
        self._array = None

    def append(self, frame: np.ndarray) -> None:
        self._shape = frame.shape
        self._file.write(np.ascontiguousarray(frame).tobytes())
        self._count += 1

    def finish(self) -> np.ndarray:
        """The stored frames as a read-only (N, H, W, 3) array backed by the file."""
        self._file.close()
        self._array = np.memmap(self._path, np.uint8, "r", shape=(self._count, *self._shape))
        return self._array


@dataclass
class Source:
    """An identity source. crops: (N, 256, 256, 3) uint8 (N = 1 for a photo); matrices: N crop->frame
    transforms; originals: the uncropped frames (for paste-back) or None."""

    name: str
    crops: np.ndarray
    matrices: list[np.ndarray]
    originals: np.ndarray | None
    storage: tempfile.TemporaryDirectory | None = None  # backs video frames; removed with the Source

    @property
    def is_video(self) -> bool:
        return len(self.crops) > 1


@dataclass
class Rendering:
    """A lazily rendered clip: iterate `frames` for (b, H, W, 3) uint8 batches. Use it as a context
    manager (or call `close`) so that its temporary files go as soon as it is done or abandoned."""

    frames: Iterator[np.ndarray]
    num_frames: int
    fps: float
    size: tuple[int, int]  # (height, width)
    audio_path: Path | None
    storage: tempfile.TemporaryDirectory | None = None  # a re-dubbed video's frames

    def close(self) -> None:
        """Stop generating and remove the temporary files behind the clip."""
        self.frames.close()
        if self.storage is not None:
            self.storage.cleanup()

    def __enter__(self) -> "Rendering":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_batch_size(device: torch.device) -> int:
    """Frames per generator call: 1 on CPU (larger batches only add memory traffic there), 16 on GPUs."""
    return 1 if device.type == "cpu" else 16


class TalkingHeadPipeline:
    """Loads a generator (the full EDTalk or the lip-pose model) once and renders any number of clips.

    ckpt_dir: folder with EDTalk.pt / EDTalk_lip_pose.pt / Audio2Lip.pt / predefined_exp_weights/.
    generator_path: a generator checkpoint to use instead of the one in ckpt_dir (e.g. a model
        fine-tuned on one person by train/train_fine_tune.py); it must fit `model`.
    audio2lip_path: an Audio2Lip checkpoint to use instead of ckpt_dir/Audio2Lip.pt.
    batch_size: frames per generator call (None: 1 on CPU, 16 on a GPU).
    crop: detect and align faces (False: inputs are already aligned crops, resized to 256 if needed).
    precision: 'fp32' (exact), or 'bf16' / 'fp16' autocast for the networks (faster on GPUs;
        outputs differ slightly; fp16 needs a GPU). The motion-bank maths always stays float32.
    compile: run the decoder through torch.compile (first batch slower, later ones faster).
    face_index: with several faces, use the N-th from the left (None: the clearest).
    face_sr: restore every rendered face with GFPGAN (ckpt_dir/GFPGANv1.4.pth): 512x512 frames, or
        the restored face pasted into the original frames; sr_blend mixes restored and upscaled
        faces (1: fully restored).
    """

    def __init__(
        self,
        ckpt_dir: str | Path = "ckpts",
        model: str = FULL,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        crop: bool = True,
        progress: bool = True,
        precision: str = "fp32",
        compile: bool = False,
        generator_path: str | Path | None = None,
        face_index: int | None = None,
        audio2lip_path: str | Path | None = None,
        face_sr: bool = False,
        sr_blend: float = 1.0,
    ):
        if batch_size is not None and batch_size < 1:
            raise EDTalkError(f"batch size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise EDTalkError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision}")
        self.ckpt_dir = Path(ckpt_dir)
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type == "cpu":
            raise EDTalkError("fp16 needs a GPU; use --precision bf16 or fp32 on the CPU")
        path = Path(generator_path) if generator_path else self.ckpt_dir / MODEL_FILES[model]
        self.generator: Generator = load_generator(path, self.device, kind=model)
        if compile:
            self.generator.dec = torch.compile(self.generator.dec)
        self.batch_size = batch_size or default_batch_size(self.device)
        self.precision = PRECISIONS[precision]
        self.aligner = FaceAligner(face_index=face_index) if crop else None
        self.progress = progress
        self._audio2lip = None
        self.audio2lip_path = Path(audio2lip_path) if audio2lip_path else self.ckpt_dir / "Audio2Lip.pt"
        self.restorer = None
        if face_sr:
            if not 0 <= sr_blend <= 1:
                raise EDTalkError(f"--sr_blend must be between 0 and 1, got {sr_blend}")
            gfpgan = load_gfpgan(self.ckpt_dir / GFPGAN_FILE, self.device)
            self.restorer = FaceRestorer(gfpgan, sr_blend, batch_size=self.batch_size, aligner=FaceAligner())

    def _bar(self, items: Iterator, total: int, desc: str) -> Iterator:
        """`items` with a progress bar on stderr (frames done / total, time left) unless progress is off."""
        return tqdm(items, total=total or None, desc=desc, unit="frame", disable=not self.progress, leave=False)

    @contextlib.contextmanager
    def _networks(self):
        """Context for running the generator: no autograd, and autocast unless fp32."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.precision != torch.float32:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.precision))
            yield

    # ---- inputs ----------------------------------------------------------------------------------

    def _crop_image(self, image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(crop (256, 256, 3), crop->image matrix) for one image."""
        if self.aligner is None:
            return _whole_frame(image, name)
        face = self.aligner.align(image, name)
        return face.crop, face.matrix

    def _video_matrices(self, path: Path, sigma: float | None, limit: int | None) -> list[np.ndarray]:
        """Crop matrices for the first `limit` (None: all) 25-fps frames of a video (one detection pass)."""
        frames = int(video_duration(path) * FPS) if limit is None else limit
        stride = SOURCE_DETECTION_STRIDE if sigma else max(1, frames // DETECTIONS_PER_CLIP)
        found, count = {}, 0
        decoded = self._bar(itertools.islice(iter_frames(path, FPS), limit), frames, f"finding the face in {path.name}")
        for i, frame in enumerate(decoded):
            count += 1
            if i % stride == 0:
                faces = self.aligner.landmarks(frame, str(path))
                if faces:
                    found[i] = similarity_transform(faces[0])
        if not found:
            raise NoFaceError(f"no face found in {path}")
        return smooth_transforms(found, count, sigma)

    def _video_crops(
        self, path: Path, sigma: float | None = None, limit: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(frame, crop, matrix) for the first `limit` 25-fps frames; one stable crop (sigma None) or smoothed."""
        frames = itertools.islice(iter_frames(path, FPS), limit)
        if self.aligner is None:
            yield from ((frame, *_whole_frame(frame, path)) for frame in frames)
            return
        for frame, matrix in zip(frames, self._video_matrices(path, sigma, limit)):
            yield frame, warp(frame, matrix), matrix

    def load_source(self, path: str | Path, keep_original: bool = False) -> Source:
        """A photo (one crop) or a video (one crop per 25-fps frame, for re-dubbing)."""
        path = Path(path)
        if is_image(path):
            image = read_image(path)
            crop, matrix = self._crop_image(image, str(path))
            return Source(str(path), crop[None], [matrix], image[None] if keep_original else None)
        storage = tempfile.TemporaryDirectory(prefix="edtalk-source-")
        crops = FrameStore(Path(storage.name), "crops")
        originals = FrameStore(Path(storage.name), "originals") if keep_original else None
        matrices = []
        total = int(video_duration(path) * FPS)
        for frame, crop, matrix in self._bar(self._video_crops(path, SOURCE_SMOOTHING), total, f"cropping {path.name}"):
            crops.append(crop)
            matrices.append(matrix)
            if originals is not None:
                originals.append(frame)
        return Source(str(path), crops.finish(), matrices, originals.finish() if originals else None, storage)

    @property
    def audio2lip(self):
        if self._audio2lip is None:
            self._audio2lip = load_audio2lip(self.audio2lip_path, self.device)
        return self._audio2lip

    def lip_from_audio(self, path: str | Path) -> torch.Tensor:
        """(T, 20) smoothed mouth coefficients, one row per 25-fps output frame.

        Mel windows are made and encoded a chunk at a time, so their memory stays constant.
        """
        wav, frames = audio_io.load_for_video(path, FPS)

        def chunks():
            for windows in audio_io.mel_window_chunks(wav, frames, FPS):
                yield torch.from_numpy(windows).to(self.device)
                release_free_memory()  # else the freed chunks stay resident (see edtalk/memory.py)

        with torch.inference_mode():
            return self.audio2lip.predict_chunks(chunks())

    def driver_coefficients(
        self, path: str | Path, parts: Sequence[str], limit: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Motion coefficients of a driving image or video: {part: (N, dim)}, N frames at 25 fps.

        Only the first `limit` frames are read (an output of T frames never uses more of a driver,
        even ping-ponged). Frames are cropped with one stable crop, encoded `batch_size` at a time
        and reduced to coefficients, so a long driving video costs no memory.
        """
        path = Path(path)
        if is_image(path):
            crops = iter([self._crop_image(read_image(path), str(path))[0]])
        else:
            total = limit or int(video_duration(path) * FPS)
            crops = self._bar(
                (crop for _, crop, _ in self._video_crops(path, limit=limit)), total, f"encoding {path.name}"
            )
        out = {part: [] for part in parts}
        with self._networks():
            for batch in _batched(crops, self.batch_size):
                h = self.generator.encode(to_tensor(np.stack(batch), self.device))
                for part in parts:
                    out[part].append(self.generator.coefficients(h, part))
        return {part: torch.cat(chunks) for part, chunks in out.items()}

    def expression_weight(self, spec: str) -> torch.Tensor:
        """(1, 10) coefficients of a predefined emotion ("happy") or a weighted mix of them
        ("happy:0.7,surprised:0.3"; see edtalk/emotions.py) from ckpt_dir/predefined_exp_weights."""
        mix = parse_emotion_mix(spec)
        weights = load_expression_weights(self.ckpt_dir / EXPRESSION_DIR, tuple(mix))
        return sum(w * weights[name] for name, w in mix.items()).to(self.device)

    # ---- rendering -------------------------------------------------------------------------------

    def render(
        self,
        source: str | Path,
        *,
        audio: str | Path | None = None,
        lip: str | Path | None = None,
        pose: str | Path | None = None,
        exp: str | Path | None = None,
        exp_type: str | None = None,
        exp_scale: float = 1.0,
        paste_back: bool = False,
    ) -> Rendering:
        """Check and prepare every input, then return the clip as a lazy stream of frames.

        source: a photo, or a video to re-dub (frame i animates source frame i, ping-ponged).
        audio: drives the mouth (any format); with `lip` given it is only the soundtrack.
        lip: a mouth-driving video (the output then has its length); pose / exp: a driving image or
        video (ping-ponged when shorter than the output; None keeps the source's own pose /
        expression); exp_type: a predefined emotion, or a mix such as "happy:0.7,surprised:0.3",
        instead of `exp` (full model only); exp_scale: multiplies the expression coefficients of
        `exp` / `exp_type` (0 none, 1 as given, above 1 exaggerated).
        paste_back: put the animated face back into the uncropped photo / video frames.
        The output has one frame per 1/25 s of audio (or per lip-video frame), at 25 fps.
        """
        self._check_modes(audio, lip, exp, exp_type, exp_scale)
        exp_weight = self.expression_weight(exp_type) if exp_type else None
        lip_coefs = self.lip_from_audio(audio) if lip is None else None
        if lip is not None and audio is not None:
            audio_io.open_waveform(audio, sample_rate=None)  # only muxed: fail now, not after rendering
        src = self.load_source(source, keep_original=paste_back)
        drivers = self._all_driver_coefficients({"lip": lip, "pose": pose, "exp": exp}, lip_coefs)
        lip_coefs = drivers.pop("lip", lip_coefs)
        crop_size = CROP_SIZE * (2 if self.restorer else 1)
        size = src.originals.shape[1:3] if paste_back else (crop_size, crop_size)
        exp_coefs = drivers.get("exp", exp_weight)
        if exp_coefs is not None and exp_scale != 1:
            exp_coefs = exp_coefs * exp_scale
        frames = self._generate(src, lip_coefs, drivers.get("pose"), exp_coefs)
        return Rendering(frames, len(lip_coefs), FPS, tuple(size), _soundtrack(audio, lip), src.storage)

    def _check_modes(self, audio, lip, exp, exp_type, exp_scale) -> None:
        if check_expression_scale(exp_scale) != 1 and exp is None and not exp_type:
            raise EDTalkError("an expression scale needs an expression to scale: an expression reference or type")
        if (exp is not None or exp_type) and not self.generator.has_expression:
            raise EDTalkError(
                "expression control (an expression reference or --exp_type) needs the full generator EDTalk.pt; "
                "the lip-pose model keeps the source's expression"
            )
        if exp is not None and exp_type:
            raise EDTalkError("give either an expression reference or a predefined expression type, not both")
        if audio is None and lip is None:
            raise EDTalkError("nothing drives the mouth: give an audio file or a mouth-driving video")

    def _all_driver_coefficients(self, paths: dict, lip_coefs: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Coefficients per part; a file that drives several parts is read and encoded once.

        The output length is that of `lip_coefs` (from audio) or else of the mouth video, which is
        read first; other drivers are read only as far as the output can use them.
        """
        by_file: dict[Path, list[str]] = {}
        for part, path in paths.items():
            if path is not None:
                by_file.setdefault(Path(path).resolve(), []).append(part)
        coefs = {}
        for path, parts in sorted(by_file.items(), key=lambda item: "lip" not in item[1]):
            limit = len(lip_coefs) if lip_coefs is not None else len(coefs["lip"]) if "lip" in coefs else None
            coefs.update(self.driver_coefficients(path, parts, limit))
        return coefs

    def _generate(
        self, src: Source, lip: torch.Tensor, pose: torch.Tensor | None, exp: torch.Tensor | None
    ) -> Iterator[np.ndarray]:
        """Yield (b, H, W, 3) uint8 batches; source, pose and expression are indexed ping-pong."""
        gen, total = self.generator, len(lip)
        if self.restorer is not None:
            self.restorer.reset()
        with self._networks():
            shared = None if src.is_video else gen.encode_source(to_tensor(src.crops, self.device))
        bar = tqdm(total=total, unit="frame", desc="rendering", disable=not self.progress)
        try:
            for start in range(0, total, self.batch_size):
                idx = np.arange(start, min(total, start + self.batch_size))
                src_idx = pingpong(idx, len(src.crops))
                with self._networks():
                    encoded = (
                        shared if shared is not None else gen.encode_source(to_tensor(src.crops[src_idx], self.device))
                    )
                    out = gen.animate(
                        encoded, lip[torch.as_tensor(idx, device=lip.device)], _pick(pose, idx), _pick(exp, idx)
                    )
                frames = to_uint8(out.float())
                if self.restorer is not None:
                    frames = self.restorer.restore(frames)  # the crops restored at twice their size
                if src.originals is not None:
                    to_crop = np.diag([CROP_SIZE / frames.shape[2], CROP_SIZE / frames.shape[1], 1.0])
                    frames = np.stack(
                        [paste_back(src.originals[j], f, src.matrices[j] @ to_crop) for j, f in zip(src_idx, frames)]
                    )
                bar.update(len(idx))
                yield frames
        finally:
            bar.close()


def _soundtrack(audio: str | Path | None, lip: str | Path | None) -> Path | None:
    """The audio given, else the mouth video's own audio track, else none (logged)."""
    if audio is not None:
        return Path(audio)
    if has_audio_stream(lip):
        return Path(lip)
    log.warning("%s has no audio track and no audio was given: the video is silent", lip)
    return None


def _whole_frame(image: np.ndarray, name: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """--no_crop: the whole image resized to 256x256 (if needed), and its crop->image matrix."""
    h, w = image.shape[:2]
    if h != w:
        raise EDTalkError(
            f"--no_crop needs square, aligned face crops, but {name} is {w}x{h}: drop --no_crop to detect and "
            "align the face, or crop it square to 256x256 around the face"
        )
    if (h, w) != (CROP_SIZE, CROP_SIZE):
        image = cv2.resize(image, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    return image, np.diag([w / CROP_SIZE, h / CROP_SIZE, 1.0])


def _pick(coefs: torch.Tensor | None, idx: np.ndarray) -> torch.Tensor | None:
    """Rows of a per-frame coefficient track for output frames `idx` (ping-pong); (1, dim) broadcasts."""
    if coefs is None or len(coefs) == 1:
        return coefs
    return coefs[torch.as_tensor(pingpong(idx, len(coefs)), device=coefs.device)]


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
