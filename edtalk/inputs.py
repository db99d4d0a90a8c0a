"""The inputs layer: reading and checking what a render is given, before anything long runs.

Sources (a photo, a video to re-dub, or an RGB uint8 array), driving clips (reduced to their face
crops), audio (a file, or an `AudioArray` of samples written once to a temporary WAV) and the
checks of tensors handed to the generator. Networks (networks/) check nothing; user input is
checked here, with one-line EDTalkError messages.
"""

import itertools
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import soundfile
import torch
from tqdm import tqdm

from .crop_geometry import CROP_SIZE, similarity_transform, smooth_transforms, warp
from .errors import AudioError, EDTalkError
from .face_align import FaceAligner, NoFaceError
from .images import check_image_tensor
from .video_io import has_audio_stream, is_image, iter_frames, read_image, video_duration

log = logging.getLogger(__name__)

FPS = 25.0
DETECTIONS_PER_CLIP = 32  # frames sampled to place one stable crop on a driving video
SOURCE_DETECTION_STRIDE = 5  # every 5th frame of a re-dubbed source video is detected...
SOURCE_SMOOTHING = 12.0  # ...and its crop smoothed with a Gaussian of 12 frames (0.5 s)
ARRAY_NAME = "the source image (array)"

Progress = Callable[[Iterator, int, str], Iterator]  # (items, total, description) -> the items, shown


def progress_bar(enabled: bool) -> Progress:
    """A `Progress`: a bar on stderr (frames done / total, time left), or none when not `enabled`."""

    def bar(items: Iterator, total: int, desc: str) -> Iterator:
        return tqdm(items, total=total or None, desc=desc, unit="frame", disable=not enabled, leave=False)

    return bar


@dataclass(frozen=True)
class AudioArray:
    """Speech given as samples: mono float32 (n,) in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int


class FrameStore:
    """Frames of one size appended to a temporary file and read back by index (bounded RAM)."""

    def __init__(self, folder: Path, name: str):
        self._path = folder / f"{name}.raw"
        self._file = open(self._path, "wb")
        self._shape = None
        self._count = 0

    def append(self, frame: np.ndarray) -> None:
        self._shape = frame.shape
        self._file.write(np.ascontiguousarray(frame).tobytes())
        self._count += 1

    def finish(self) -> np.ndarray:
        """The stored frames as a read-only (N, H, W, 3) array backed by the file."""
        self._file.close()
        return np.memmap(self._path, np.uint8, "r", shape=(self._count, *self._shape))


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


def is_photo(source) -> bool:
    """True for a source that is one image (an array or an image file), False for a video."""
    return isinstance(source, np.ndarray) or is_image(Path(source))


def check_source_array(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 (H, W, 3) source image, checked (one-line EDTalkError)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EDTalkError(f"a source array must be an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


def audio_file(audio, folder: Path) -> Path | None:
    """A path for the audio: a file as given, or an `AudioArray` written into `folder` as a float WAV."""
    if audio is None or not isinstance(audio, AudioArray):
        return None if audio is None else Path(audio)
    samples = np.asarray(audio.samples)
    if samples.ndim != 1 or samples.dtype.kind != "f" or not len(samples) or audio.sample_rate <= 0:
        raise AudioError(
            f"audio samples must be a non-empty mono float (n,) array at a positive rate, got {samples.dtype} "
            f"{samples.shape} at {audio.sample_rate} Hz"
        )
    path = folder / "speech.wav"
    soundfile.write(str(path), samples.astype(np.float32), int(audio.sample_rate), subtype="FLOAT")
    return path


def soundtrack(audio: Path | None, lip: str | Path | None) -> Path | None:
    """The audio given, else the mouth video's own audio track, else none (said in the log)."""
    if audio is not None:
        return audio
    if has_audio_stream(lip):
        return Path(lip)
    log.warning("%s has no audio track and no audio was given: the video is silent", lip)
    return None


def whole_frame(image: np.ndarray, name: str | Path) -> tuple[np.ndarray, np.ndarray]:
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


class FaceReader:
    """Turns photos and videos into 256x256 face crops: detected and aligned (`aligner`), or taken
    whole (`aligner` None: --no_crop). `progress` shows long loops (see `Progress`)."""

    def __init__(self, aligner: FaceAligner | None, progress: Progress):
        self.aligner = aligner
        self.progress = progress

    def crop_image(self, image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(crop (256, 256, 3), crop->image matrix) for one image."""
        if self.aligner is None:
            return whole_frame(image, name)
        face = self.aligner.align(image, name)
        return face.crop, face.matrix

    def _matrices(self, path: Path, sigma: float | None, limit: int | None) -> list[np.ndarray]:
        """Crop matrices for the first `limit` (None: all) 25-fps frames of a video (one detection pass)."""
        frames = int(video_duration(path) * FPS) if limit is None else limit
        stride = SOURCE_DETECTION_STRIDE if sigma else max(1, frames // DETECTIONS_PER_CLIP)
        found, count = {}, 0
        decoded = self.progress(
            itertools.islice(iter_frames(path, FPS), limit), frames, f"finding the face in {path.name}"
        )
        for i, frame in enumerate(decoded):
            count += 1
            if i % stride == 0:
                faces = self.aligner.landmarks(frame, str(path))
                if faces:
                    found[i] = similarity_transform(faces[0])
        if not found:
            raise NoFaceError(f"no face found in {path}")
        return smooth_transforms(found, count, sigma)

    def video_crops(
        self, path: Path, sigma: float | None = None, limit: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(frame, crop, matrix) for the first `limit` 25-fps frames; one stable crop (sigma None) or smoothed."""
        frames = itertools.islice(iter_frames(path, FPS), limit)
        if self.aligner is None:
            yield from ((frame, *whole_frame(frame, path)) for frame in frames)
            return
        for frame, matrix in zip(frames, self._matrices(path, sigma, limit)):
            yield frame, warp(frame, matrix), matrix

    def driver_crops(self, path: Path, limit: int | None) -> Iterator[np.ndarray]:
        """The (256, 256, 3) crops of a driving image, or of a video's first `limit` frames (all: None)."""
        if is_image(path):
            return iter([self.crop_image(read_image(path), str(path))[0]])
        total = limit or int(video_duration(path) * FPS)
        crops = (crop for _, crop, _ in self.video_crops(path, limit=limit))
        return self.progress(crops, total, f"encoding {path.name}")

    def source(self, source, keep_original: bool = False, limit: int | None = None) -> Source:
        """A photo or an (H, W, 3) uint8 array (one crop), or a video (one crop per 25-fps frame, for
        re-dubbing; only its first `limit` frames are decoded, detected and stored: None, all)."""
        if isinstance(source, np.ndarray):
            image = check_source_array(source)
            crop, matrix = self.crop_image(image, ARRAY_NAME)
            return Source(ARRAY_NAME, crop[None], [matrix], image[None] if keep_original else None)
        path = Path(source)
        if is_image(path):
            image = read_image(path)
            crop, matrix = self.crop_image(image, str(path))
            return Source(str(path), crop[None], [matrix], image[None] if keep_original else None)
        storage = tempfile.TemporaryDirectory(prefix="edtalk-source-")
        crops = FrameStore(Path(storage.name), "crops")
        originals = FrameStore(Path(storage.name), "originals") if keep_original else None
        matrices = []
        total = int(video_duration(path) * FPS) if limit is None else limit
        for frame, crop, matrix in self.progress(
            self.video_crops(path, SOURCE_SMOOTHING, limit), total, f"cropping {path.name}"
        ):
            crops.append(crop)
            matrices.append(matrix)
            if originals is not None:
                originals.append(frame)
        return Source(str(path), crops.finish(), matrices, originals.finish() if originals else None, storage)


# ---- tensors from library users ---------------------------------------------------------------
# The networks check nothing (a range check reads values back from the device, a sync per call):
# a library user's tensors enter them through these functions, checked once, with one-line errors.


def check_generator_inputs(config, source, lip, pose=None, exp=None) -> None:
    """Check what a library user hands to `Generator.animate` (see its docstring for the shapes):
    source a (1 or B, 3, size, size) tensor in [-1, 1] or a SourceEncoding, lip / pose / exp frames
    (B, 3, size, size) or coefficients (B, dim), each batch B or 1. A one-line EDTalkError names the
    input and what is wrong. `config`: the generator's GeneratorConfig."""
    if exp is not None and not config.has_expression:
        raise EDTalkError(
            "this is the lip-pose generator (no expression bank): expression control needs the full "
            "EDTalk generator (EDTalk.pt)"
        )
    if torch.is_tensor(source):
        check_image_tensor("source", source, config.size)
    sizes = {"source": source.shape[0] if torch.is_tensor(source) else source.batch}
    dims = {"lip": config.lip_dim, "pose": config.pose_dim, "exp": config.exp_dim}
    for part, x in (("lip", lip), ("pose", pose), ("exp", exp)):
        if x is None and part != "lip":
            continue
        if not torch.is_tensor(x):
            raise EDTalkError(f"{part} must be a tensor of frames or coefficients, got {type(x).__name__}")
        if x.dim() == 4:
            check_image_tensor(f"{part} frames", x, config.size)
        elif x.dim() != 2 or x.shape[1] != dims[part]:
            raise EDTalkError(
                f"{part} must be (B, {dims[part]}) coefficients or (B, 3, H, W) frames, got shape {tuple(x.shape)}"
            )
        sizes[part] = x.shape[0]
    batches = {k: v for k, v in sizes.items() if v != 1}
    if len(set(batches.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in batches.items())
        raise EDTalkError(f"batch sizes differ ({detail}); give each input batch B or 1")


def encode_source(generator, source: torch.Tensor):
    """`generator.encode_source` for a library user's (1 or B, 3, size, size) images in [-1, 1],
    checked first; the SourceEncoding it returns goes to `animate` for every batch of frames."""
    check_image_tensor("source", source, generator.config.size)
    return generator.encode_source(source)


def animate(generator, source, lip: torch.Tensor, pose=None, exp=None) -> torch.Tensor:
    """`generator.animate` for a library user's tensors, checked first (`check_generator_inputs`):
    returns the (B, 3, size, size) frames in [-1, 1] scale."""
    check_generator_inputs(generator.config, source, lip, pose, exp)
    return generator.animate(source, lip, pose, exp)


def predict_from_mel(model, windows: torch.Tensor):
    """`model.predict` (Audio2Lip: (T, 20) mouth coefficients; Audio2Exp: (T, 10) expression and
    emotion probabilities) for a library user's (T, 1, 80, 16) mel windows, checked first."""
    if not torch.is_tensor(windows) or windows.dim() != 4 or tuple(windows.shape[1:]) != (1, 80, 16):
        shape = tuple(windows.shape) if torch.is_tensor(windows) else type(windows).__name__
        raise AudioError(f"mel windows must be (T, 1, 80, 16) (edtalk.audio.mel_windows), got {shape}")
    return model.predict(windows)
