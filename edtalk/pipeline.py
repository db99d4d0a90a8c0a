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
from networks.audio2exp import EMOTIONS
from networks.audio2pose import pose_style

from . import audio as audio_io
from .checkpoints import (
    AUDIO2EXP_FILE,
    AUDIO2POSE_FILE,
    EXPRESSION_DIR,
    FULL,
    LIP_POSE,
    load_audio2exp,
    load_audio2lip,
    load_audio2pose,
    load_expression_weights,
    load_generator,
)
from .crop_geometry import CROP_SIZE, similarity_transform, smooth_transforms, warp
from .device import exact_fp32, resolve_device, resolve_precision
from .emotions import check_expression_scale, parse_emotion_mix
from .errors import EDTalkError
from .face_align import FaceAligner, NoFaceError
from .face_paste import paste_back
from .face_sr import FaceRestorer
from .gfpgan import GFPGAN_FILE, load_gfpgan
from .memory import release_free_memory
from .motion import pose_track
from .motion_template import MotionTemplate, TemplateError, fingerprint, is_template, load_template, save_template
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


def default_batch_size(device: torch.device) -> int:
    """Frames per generator call: 1 on CPU (larger batches only add memory traffic there), 16 on GPUs."""
    return 1 if device.type == "cpu" else 16


class TalkingHeadPipeline:
    """Loads a generator (the full EDTalk or the lip-pose model) once and renders any number of clips.

    ckpt_dir: folder with EDTalk.pt / EDTalk_lip_pose.pt / Audio2Lip.pt / predefined_exp_weights/.
    generator_path: a generator checkpoint to use instead of the one in ckpt_dir (e.g. a model
        fine-tuned on one person by train/train_fine_tune.py); it must fit `model`.
    audio2lip_path: an Audio2Lip checkpoint to use instead of ckpt_dir/Audio2Lip.pt.
    audio2exp_path: an Audio2Exp checkpoint (train/train_audio2exp.py) instead of ckpt_dir/Audio2Exp.pt.
    audio2pose_path: an Audio2Pose checkpoint (train/train_audio2pose.py) instead of ckpt_dir/Audio2Pose.pt.
    batch_size: frames per generator call (None: 1 on CPU, 16 on a GPU).
    crop: detect and align faces (False: inputs are already aligned crops, resized to 256 if needed).
    precision: 'auto' (bf16 where the hardware computes bf16 natively: CUDA
        compute capability >= 8.0, CPUs with AMX-BF16 or AVX512-BF16; else fp32), 'fp32' (exact:
        the official outputs), or 'bf16' / 'fp16' autocast for the networks (outputs differ
        slightly; fp16 needs a GPU). The motion-bank maths always stays float32.
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
        precision: str = "auto",
        compile: bool = False,
        generator_path: str | Path | None = None,
        face_index: int | None = None,
        audio2lip_path: str | Path | None = None,
        face_sr: bool = False,
        sr_blend: float = 1.0,
        audio2exp_path: str | Path | None = None,
        audio2pose_path: str | Path | None = None,
    ):
        if batch_size is not None and batch_size < 1:
            raise EDTalkError(f"batch size must be at least 1, got {batch_size}")
        self.ckpt_dir = Path(ckpt_dir)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)  # a dtype
        path = Path(generator_path) if generator_path else self.ckpt_dir / MODEL_FILES[model]
        self.generator: Generator = load_generator(path, self.device, kind=model)
        self.model = model
        self._fingerprint = None
        if compile:
            self.generator.dec = torch.compile(self.generator.dec)
        self.batch_size = batch_size or default_batch_size(self.device)
        self.aligner = FaceAligner(face_index=face_index) if crop else None
        self.progress = progress
        self._audio2lip = None
        self.audio2lip_path = Path(audio2lip_path) if audio2lip_path else self.ckpt_dir / "Audio2Lip.pt"
        self._audio2exp = None
        self.audio2exp_path = Path(audio2exp_path) if audio2exp_path else self.ckpt_dir / AUDIO2EXP_FILE
        self._audio2pose = None
        self.audio2pose_path = Path(audio2pose_path) if audio2pose_path else self.ckpt_dir / AUDIO2POSE_FILE
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
        """Context for running the generator: no autograd, and autocast unless fp32 (then no TF32 either)."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.precision != torch.float32:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.precision))
            else:
                stack.enter_context(exact_fp32(self.device))
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

    @property
    def audio2pose(self):
        if self._audio2pose is None:
            self._audio2pose = load_audio2pose(self.audio2pose_path, self.device)
        return self._audio2pose

    @property
    def audio2exp(self):
        if self._audio2exp is None:
            self._audio2exp = load_audio2exp(self.audio2exp_path, self.device)
        return self._audio2exp

    def _mel_chunks(self, path: str | Path) -> Iterator[torch.Tensor]:
        """The (n, 1, 80, 16) mel windows of an audio file, one per 25-fps frame, a chunk at a time."""
        wav, frames = audio_io.load_for_video(path, FPS)
        for windows in audio_io.mel_window_chunks(wav, frames, FPS):
            yield torch.from_numpy(windows).to(self.device)
            release_free_memory()  # else the freed chunks stay resident (see edtalk/memory.py)

    def lip_from_audio(self, path: str | Path) -> torch.Tensor:
        """(T, 20) smoothed mouth coefficients, one row per 25-fps output frame.

        Mel windows are made and encoded a chunk at a time, so their memory stays constant.
        """
        with torch.inference_mode():
            return self.audio2lip.predict_chunks(self._mel_chunks(path))

    def exp_from_audio(self, path: str | Path) -> torch.Tensor:
        """(T, 10) smoothed expression coefficients predicted from speech by Audio2Exp, one row per
        25-fps output frame (a chunk of mel windows at a time, as `lip_from_audio`); logs the
        emotion heard in the whole clip with its confidence."""
        with torch.inference_mode():
            exp, probs = self.audio2exp.predict_chunks(self._mel_chunks(path))
        best = int(probs.argmax())
        log.warning(
            "expression from the speech in %s: it sounds %s (confidence %.2f)", path, EMOTIONS[best], probs[best]
        )
        return exp

    def driver_coefficients(
        self, path: str | Path, parts: Sequence[str], limit: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Motion coefficients of a driving image, video or motion template (.npz): {part: (N, dim)},
        N frames at 25 fps.

        Only the first `limit` frames are read (an output of T frames never uses more of a driver,
        even ping-ponged). Frames are cropped with one stable crop, encoded `batch_size` at a time
        and reduced to coefficients, so a long driving video costs no memory. A template's stored
        coefficients are used as they are: no decoding, detection or encoding.
        """
        path = Path(path)
        if is_template(path):
            template = self._check_template(load_template(path), path, parts)
            return {part: torch.from_numpy(template.coefficients[part][:limit]).to(self.device) for part in parts}
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

    @property
    def generator_fingerprint(self) -> str:
        """Fingerprint of the weights that turn frames into coefficients (encoder and motion heads)."""
        if self._fingerprint is None:
            gen = self.generator
            heads = [gen.enc, gen.fc, gen.lip_fc, gen.pose_fc] + ([gen.exp_fc] if gen.has_expression else [])
            self._fingerprint = fingerprint(heads)
        return self._fingerprint

    def save_motion(self, driver: str | Path, path: str | Path) -> MotionTemplate:
        """Reduce a whole driving image or video to a motion template written at `path` (.npz): the
        coefficients of every part this generator reads (mouth, pose and, full model, expression)."""
        parts = ["lip", "pose", "exp"] if self.generator.has_expression else ["lip", "pose"]
        coefs = self.driver_coefficients(driver, parts)
        arrays = {part: c.float().cpu().numpy() for part, c in coefs.items()}
        template = MotionTemplate(arrays, FPS, Path(driver).name, self.model, self.generator_fingerprint)
        save_template(template, path)
        return template

    def _check_template(self, template: MotionTemplate, path: Path, parts: Sequence[str]) -> MotionTemplate:
        """`template` if its coefficients mean the same to this generator; TemplateError if not."""
        kinds = {FULL: "full generator", LIP_POSE: "lip-pose generator"}
        if template.model != self.model:
            raise TemplateError(
                f"{path} holds motion computed by the {kinds.get(template.model, template.model)}, but this mode "
                f"uses the {kinds[self.model]}: save the template again in this mode (--save_motion)"
            )
        if template.fps != FPS:
            raise TemplateError(f"{path} is a motion template at {template.fps:g} fps; renders need {FPS:g} fps")
        config = self.generator.config
        for part in parts:
            dim = getattr(config, f"{part}_dim")
            if template.coefficients.get(part, np.empty((0, 0))).shape[1] != dim:
                raise TemplateError(f"{path} has no {part} coefficients of size {dim} for this generator")
        if template.generator != self.generator_fingerprint:
            log.warning(
                "%s was saved with other %s weights (%s, this one %s): the motion may look different",
                path,
                kinds[self.model],
                template.generator,
                self.generator_fingerprint,
            )
        return template

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
        exp_from_audio: bool | None = None,
        pose_from_audio: bool | None = None,
        pose_temperature: float = 0.7,
        seed: int = 0,
        pose_style: str | Path | None = None,
        paste_back: bool = False,
        face_sr: bool | None = None,
    ) -> Rendering:
        """Check and prepare every input, then return the clip as a lazy stream of frames.

        source: a photo, or a video to re-dub (frame i animates source frame i, ping-ponged).
        audio: drives the mouth (any format); with `lip` given it is only the soundtrack.
        lip: a mouth-driving video (the output then has its length); pose / exp: a driving image or
        video (ping-ponged when shorter than the output; None keeps the source's own pose /
        expression); each of lip / pose / exp may also be a motion template (.npz, `save_motion`).
        exp_type: a predefined emotion, or a mix such as "happy:0.7,surprised:0.3", instead of
        `exp` (full model only); exp_scale: multiplies the expression coefficients of
        `exp` / `exp_type` / the audio's (0 none, 1 as given, above 1 exaggerated).
        exp_from_audio: the expression follows the speech (Audio2Exp, `exp_from_audio`); None: when
        the audio drives the mouth, no `exp` / `exp_type` is given, the generator is the full model
        and the Audio2Exp checkpoint exists (else the source keeps its expression, and the log says why).
        pose_from_audio: the head moves with the speech (Audio2Pose, `pose_from_audio`); None: when
        the audio is given, the source is a photo, no `pose` is given and the Audio2Pose checkpoint
        exists (else the head stays still, and the log says why). pose_temperature: how far the
        sampled motion spreads (0: one deterministic path, 1: as in training); seed: the sampling
        noise (the same seed gives the same motion); pose_style: a clip (video, image or motion
        template) whose head-pose statistics (mean and spread) the motion takes on; implies
        pose_from_audio.
        paste_back: put the animated face back into the uncropped photo / video frames.
        face_sr: restore the faces (None: when the pipeline was made with face_sr; False: not this
        clip; True: needs a pipeline made with face_sr).
        The output has one frame per 1/25 s of audio (or per lip-video frame), at 25 fps.
        """
        self._check_modes(audio, lip, exp, exp_type)
        wants_pose = True if pose_style is not None and pose_from_audio is None else pose_from_audio
        audio_pose = self._wants_audio_pose(source, audio, pose, wants_pose)
        if pose_style is not None and not audio_pose:
            raise EDTalkError("a pose style shapes the head motion from the audio: it needs pose from the audio")
        if audio_pose and pose_temperature < 0:
            raise EDTalkError(f"the pose temperature must be 0 or more, got {pose_temperature}")
        exp_weight = self.expression_weight(exp_type) if exp_type else None
        audio_exp = self._expression_from_audio(audio, lip, exp, exp_type, exp_from_audio)
        if check_expression_scale(exp_scale) != 1 and exp is None and not exp_type and audio_exp is None:
            raise EDTalkError("an expression scale needs an expression to scale: a reference, a type or the audio's")
        lip_coefs = self.lip_from_audio(audio) if lip is None else None
        if lip is not None and audio is not None:
            audio_io.open_waveform(audio, sample_rate=None)  # only muxed: fail now, not after rendering
        src = self.load_source(source, keep_original=paste_back)
        drivers = self._all_driver_coefficients({"lip": lip, "pose": pose, "exp": exp}, lip_coefs)
        lip_coefs = drivers.pop("lip", lip_coefs)
        restorer = self._restorer(face_sr)
        crop_size = CROP_SIZE * (2 if restorer else 1)
        size = src.originals.shape[1:3] if paste_back else (crop_size, crop_size)
        exp_coefs = drivers.get("exp", exp_weight if audio_exp is None else audio_exp)
        if exp_coefs is not None and exp_scale != 1:
            exp_coefs = exp_coefs * exp_scale
        pose_coefs = drivers.get("pose")
        if audio_pose:
            pose_coefs = self.pose_from_audio(audio, len(lip_coefs), src, pose_temperature, seed, pose_style)
        frames = self._generate(src, lip_coefs, pose_coefs, exp_coefs, restorer)
        return Rendering(frames, len(lip_coefs), FPS, tuple(size), _soundtrack(audio, lip), src.storage)

    def _wants_audio_pose(self, source, audio, pose, wanted: bool | None) -> bool:
        """Whether the head pose comes from the audio (`wanted` None: see `render`)."""
        if wanted is None:
            if pose is not None or audio is None or not is_image(Path(source)):
                return False
            if not self.audio2pose_path.is_file():
                log.warning(
                    "no pose video given and no %s: the head stays still (train Audio2Pose with "
                    "train/train_audio2pose.py to have it move with the speech)",
                    self.audio2pose_path,
                )
                return False
            return True
        if wanted and pose is not None:
            raise EDTalkError("give either a pose video or pose from the audio, not both")
        if wanted and audio is None:
            raise EDTalkError("pose from the audio needs an audio file (--audio_driving_path)")
        return wanted

    def pose_from_audio(
        self, audio: str | Path, frames: int, src: Source, temperature: float, seed: int, style: str | Path | None
    ) -> torch.Tensor:
        """(frames, 6) head-pose coefficients sampled from the speech, starting from the source's own
        pose (its first frame's); `style`: a reference clip whose pose statistics the motion takes on."""
        with self._networks():
            wa = self.generator.enc(to_tensor(src.crops[:1], self.device))[0]
            start = self.generator.coefficients(wa, "pose")[0].float()
        reference = pose_style(self.driver_coefficients(style, ["pose"])["pose"]) if style is not None else None
        return pose_track(self.audio2pose, audio, frames, start, reference, temperature, seed, FPS)

    def _expression_from_audio(self, audio, lip, exp, exp_type, wanted: bool | None) -> torch.Tensor | None:
        """The (T, 10) expression predicted from `audio` when `wanted` (None: see `render`), else None."""
        given = exp is not None or bool(exp_type)
        if wanted is None:
            if given or lip is not None or audio is None or not self.generator.has_expression:
                return None
            if not self.audio2exp_path.is_file():
                log.warning(
                    "no expression reference or type given and no %s: the source keeps its own expression "
                    "(train Audio2Exp with train/train_audio2exp.py to have it follow the speech)",
                    self.audio2exp_path,
                )
                return None
        elif not wanted:
            return None
        elif given:
            raise EDTalkError("give either an expression from the audio or an expression reference / type, not both")
        elif not self.generator.has_expression:
            raise EDTalkError("expression from the audio needs the full generator EDTalk.pt (an expression bank)")
        elif audio is None:
            raise EDTalkError("expression from the audio needs an audio file (--audio_driving_path)")
        return self.exp_from_audio(audio)

    def _check_modes(self, audio, lip, exp, exp_type) -> None:
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

    def _restorer(self, face_sr: bool | None) -> FaceRestorer | None:
        """The face restorer one render uses (see `render`)."""
        if face_sr and self.restorer is None:
            raise EDTalkError("face restoration was not loaded: make the pipeline with face_sr=True (--face_sr)")
        return None if face_sr is False else self.restorer

    def _generate(
        self,
        src: Source,
        lip: torch.Tensor,
        pose: torch.Tensor | None,
        exp: torch.Tensor | None,
        restorer: FaceRestorer | None,
    ) -> Iterator[np.ndarray]:
        """Yield (b, H, W, 3) uint8 batches; source, pose and expression are indexed ping-pong."""
        gen, total = self.generator, len(lip)
        if restorer is not None:
            restorer.reset()
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
                if restorer is not None:
                    frames = restorer.restore(frames)  # the crops restored at twice their size
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
