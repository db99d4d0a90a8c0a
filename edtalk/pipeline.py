"""Inference pipeline: built once from a checkpoint folder, then turns photos/videos and audio into
frame streams.

    pipe = TalkingHeadPipeline("ckpts", model="full", device="auto")
    with (
        pipe.render("photo.jpg", audio="speech.m4a", pose="head.mp4", exp_type="happy") as result,
        VideoWriter("out.mp4", result.fps, result.audio_path, num_frames=result.num_frames) as writer,
    ):
        for frames in result.frames:          # (b, H, W, 3) uint8 batches, produced lazily
            writer.write(frames)

A render goes through three parts: the request (edtalk/options.RenderOptions) becomes a plan
(edtalk/plan.py, pure: which coefficients come from where); everything that can be checked without
reading media is checked and the networks the plan needs are loaded (a bad input fails before any
frame is read); then the inputs layer (edtalk/inputs.py) reads the source and reduces driving
clips to motion coefficients, and rendering (edtalk/rendering.py) returns a lazy iterator: frames
are generated batch by batch while they are consumed, so memory does not grow with the clip.

Components are injected (`Parts`, `TalkingHeadPipeline.from_parts`): the generator backend
(edtalk/torch_backend: `encode_source` / `animate` / `motion`), the face reader, the
speech-to-motion networks and an optional face restorer; `TalkingHeadPipeline(ckpt_dir, ...)` and
`from_options` build them from files (`build_parts`). The pipeline reads files but never writes
any (except `save_motion`).
"""

import dataclasses
import itertools
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from networks.audio2pose import pose_style

from . import audio as audio_io
from .backends import make_backend
from .checkpoints import (
    AUDIO2EXP_FILE,
    AUDIO2POSE_FILE,
    DEFAULT_CKPT_DIR,
    EXPRESSION_DIR,
    FULL,
    LIP_POSE,
    load_expression_weights,
    load_generator,
)
from .device import resolve_device, resolve_precision
from .emotions import parse_emotion_mix
from .errors import EDTalkError
from .face_align import FaceAligner
from .face_sr import FaceRestorer
from .gfpgan import GFPGAN_FILE, load_gfpgan
from .inputs import FPS, FaceReader, Source, audio_file, is_photo, progress_bar, soundtrack
from .motion import AudioMotion
from .motion_template import MotionTemplate, TemplateError, is_template, load_template, save_template
from .options import PipelineOptions, RenderOptions
from .plan import Facts, make_plan
from .rendering import Rendering, generate, output_size
from .torch_backend import GeneratorBackend

log = logging.getLogger(__name__)

MODEL_FILES = {FULL: "EDTalk.pt", LIP_POSE: "EDTalk_lip_pose.pt"}
KINDS = {FULL: "full generator", LIP_POSE: "lip-pose generator"}


def default_batch_size(device: torch.device) -> int:
    """Frames per generator call: 1 on CPU (larger batches only add memory traffic there), 16 on GPUs."""
    return 1 if device.type == "cpu" else 16


@dataclasses.dataclass(frozen=True)
class Parts:
    """The components of a pipeline. backend: the generator (see edtalk/torch_backend.GeneratorBackend);
    reader: turns photos and videos into face crops; motion: the speech-to-motion networks;
    expression_dir: the predefined emotion weights; batch_size: frames per generator call; restorer:
    restores rendered faces (GFPGAN) when a render asks for it (by default every render of a pipeline
    that has one); progress: show progress bars and notes."""

    backend: GeneratorBackend
    reader: FaceReader
    motion: AudioMotion
    expression_dir: Path
    batch_size: int
    restorer: FaceRestorer | None = None
    progress: bool = True


def build_parts(options: PipelineOptions, restorer: FaceRestorer | None = None) -> Parts:
    """Every component of a pipeline loaded from checkpoint files (see PipelineOptions); `restorer`:
    one to share between pipelines (else one is loaded when options.face_sr)."""
    o = options
    if o.batch_size is not None and o.batch_size < 1:
        raise EDTalkError(f"batch size must be at least 1, got {o.batch_size}")
    if o.face_sr and not 0 <= o.sr_blend <= 1:
        raise EDTalkError(f"--sr_blend must be between 0 and 1, got {o.sr_blend}")
    ckpt_dir, device = Path(o.ckpt_dir), resolve_device(o.device)
    generator = load_generator(o.generator_path or ckpt_dir / MODEL_FILES[o.model], device, kind=o.model)
    batch_size = o.batch_size or default_batch_size(device)
    precision = resolve_precision(o.precision, device)
    runtime = dict(batch_size=batch_size, compile=o.compile, cuda_graphs=o.cuda_graphs)
    backend = make_backend(generator, o.model, device, precision, o.backend, **runtime)
    paths = {
        "lip": Path(o.audio2lip_path or ckpt_dir / "Audio2Lip.pt"),
        "exp": Path(o.audio2exp_path or ckpt_dir / AUDIO2EXP_FILE),
        "pose": Path(o.audio2pose_path or ckpt_dir / AUDIO2POSE_FILE),
    }
    motion = AudioMotion(paths, device, backend.fingerprint)
    if restorer is None and o.face_sr:
        gfpgan = load_gfpgan(ckpt_dir / GFPGAN_FILE, device)
        restorer = FaceRestorer(gfpgan, o.sr_blend, batch_size=batch_size, aligner=FaceAligner())
    reader = FaceReader(FaceAligner(face_index=o.face_index) if o.crop else None, progress_bar(o.progress))
    return Parts(backend, reader, motion, ckpt_dir / EXPRESSION_DIR, batch_size, restorer, o.progress)


class TalkingHeadPipeline:
    """Renders any number of clips with one set of components (`Parts`).

    `TalkingHeadPipeline(ckpt_dir, model, device, **options)` loads them from checkpoint files
    (options: the other fields of PipelineOptions); `from_options` does the same from a
    PipelineOptions; `from_parts` takes components made elsewhere (another generator backend, a
    shared restorer...).
    """

    def __init__(self, ckpt_dir: str | Path = DEFAULT_CKPT_DIR, model: str = FULL, device: str = "auto", **options):
        self._use(build_parts(PipelineOptions(ckpt_dir=ckpt_dir, model=model, device=device, **options)))

    def _use(self, parts: Parts) -> None:
        self.parts = parts
        self.backend, self.reader, self.motion = parts.backend, parts.reader, parts.motion
        self.expression_dir, self.batch_size = Path(parts.expression_dir), parts.batch_size
        self.restorer, self.progress = parts.restorer, parts.progress
        self._noted: set[str] = set()

    @classmethod
    def from_parts(cls, parts: Parts) -> "TalkingHeadPipeline":
        """A pipeline of the given components."""
        pipe = cls.__new__(cls)
        pipe._use(parts)
        return pipe

    @classmethod
    def from_options(cls, options: PipelineOptions, restorer: FaceRestorer | None = None) -> "TalkingHeadPipeline":
        """A pipeline loaded from checkpoint files as `options` say (see build_parts)."""
        return cls.from_parts(build_parts(options, restorer))

    def with_restorer(self, restorer: FaceRestorer | None) -> "TalkingHeadPipeline":
        """A pipeline sharing every component with this one, and `restorer` as its face restorer."""
        return self.from_parts(dataclasses.replace(self.parts, restorer=restorer))

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def precision(self) -> torch.dtype:
        return self.backend.precision

    @property
    def model(self) -> str:
        return self.backend.model

    @property
    def has_expression(self) -> bool:
        return self.backend.config.has_expression

    @property
    def generator(self):
        """The torch generator behind the backend (OpenVINO's runs its motion-bank maths)."""
        return self.backend.generator

    @property
    def generator_fingerprint(self) -> str:
        return self.backend.fingerprint

    def _render_bar(self, total: int) -> tqdm:
        return tqdm(total=total, unit="frame", desc="rendering", disable=not self.progress)

    # ---- motion ----------------------------------------------------------------------------------

    def load_source(self, source, keep_original: bool = False, limit: int | None = None) -> Source:
        """See FaceReader.source."""
        return self.reader.source(source, keep_original, limit)

    def lip_from_audio(self, path: str | Path) -> torch.Tensor:
        """(T, 20) mouth coefficients of the speech in `path` (see AudioMotion.lip)."""
        return self.motion.lip(path)

    def exp_from_audio(self, path: str | Path) -> torch.Tensor:
        """(T, 10) expression coefficients of the speech in `path` (see AudioMotion.expression)."""
        return self.motion.expression(path)

    def pose_from_audio(
        self, audio: str | Path, frames: int, src: Source, temperature: float, seed: int, style: str | Path | None
    ) -> torch.Tensor:
        """(frames, 6) head-pose coefficients sampled from the speech, starting from the source's own
        pose (its first frame's); `style`: a reference clip whose pose statistics the motion takes on."""
        start = self.backend.motion(src.crops[:1], ["pose"])["pose"][0].float()
        reference = pose_style(self.driver_coefficients(style, ["pose"])["pose"]) if style is not None else None
        return self.motion.pose(audio, frames, start, reference, temperature, seed)

    def driver_coefficients(
        self, path: str | Path, parts: Sequence[str], limit: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Motion coefficients of a driving image, video or motion template (.npz): {part: (N, dim)},
        N frames at 25 fps, only the first `limit` frames read (an output of T frames never uses more
        of a driver, even ping-ponged). Crops are encoded `batch_size` at a time, so a long driving
        video costs no memory; a template's coefficients are used as they are."""
        path = Path(path)
        if is_template(path):
            template = self.check_template(path, parts)
            return {part: torch.from_numpy(template.coefficients[part][:limit]).to(self.device) for part in parts}
        out = {part: [] for part in parts}
        crops = iter(self.reader.driver_crops(path, limit))
        while batch := list(itertools.islice(crops, self.batch_size)):
            for part, coefs in self.backend.motion(np.stack(batch), parts).items():
                out[part].append(coefs)
        return {part: torch.cat(chunks) for part, chunks in out.items()}

    def save_motion(self, driver: str | Path, path: str | Path) -> MotionTemplate:
        """Reduce a whole driving image or video to a motion template written at `path` (.npz): the
        coefficients of every part this generator reads (mouth, pose and, full model, expression)."""
        parts = ["lip", "pose", "exp"] if self.has_expression else ["lip", "pose"]
        coefs = self.driver_coefficients(driver, parts)
        arrays = {part: c.float().cpu().numpy() for part, c in coefs.items()}
        template = MotionTemplate(arrays, FPS, Path(driver).name, self.model, self.generator_fingerprint)
        save_template(template, path)
        return template

    def check_template(self, path: Path, parts: Sequence[str]) -> MotionTemplate:
        """The template at `path` if its coefficients mean the same to this generator; TemplateError if
        not (a template of other weights of the same kind: a warning)."""
        template = load_template(path)
        if template.model != self.model:
            raise TemplateError(
                f"{path} holds motion computed by the {KINDS.get(template.model, template.model)}, but this mode "
                f"uses the {KINDS[self.model]}: save the template again in this mode (--save_motion)"
            )
        if template.fps != FPS:
            raise TemplateError(f"{path} is a motion template at {template.fps:g} fps; renders need {FPS:g} fps")
        config = self.backend.config
        for part in parts:
            dim = getattr(config, f"{part}_dim")
            if template.coefficients.get(part, np.empty((0, 0))).shape[1] != dim:
                raise TemplateError(f"{path} has no {part} coefficients of size {dim} for this generator")
        if template.generator != self.generator_fingerprint:
            log.warning(
                "%s was saved with other %s weights (%s, this one %s): the motion may look different",
                *(path, KINDS[self.model], template.generator, self.generator_fingerprint),
            )
        return template

    def expression_weight(self, spec: str) -> torch.Tensor:
        """(1, 10) coefficients of a predefined emotion ("happy", any case) or a weighted mix of them
        ("happy:0.6,surprised:0.4"; see edtalk/emotions.py) from the predefined weights."""
        mix = parse_emotion_mix(spec)
        weights = load_expression_weights(self.expression_dir, tuple(mix))
        return sum(w * weights[name] for name, w in mix.items()).to(self.device)

    # ---- rendering -------------------------------------------------------------------------------

    def facts(self, request: RenderOptions) -> Facts:
        """What the plan of `request` depends on besides the request (no media read)."""
        return Facts(
            has_expression=self.has_expression,
            source_is_photo=is_photo(request.source),
            lip_is_template=request.lip is not None and is_template(request.lip),
            audio2exp_available=self.motion.available("exp"),
            audio2pose_available=self.motion.available("pose"),
            face_sr_loaded=self.restorer is not None,
            audio2exp_path=str(self.motion.paths["exp"]),
            audio2pose_path=str(self.motion.paths["pose"]),
        )

    def render(self, source=None, **options) -> Rendering:
        """Check and prepare every input, then return the clip as a lazy stream of frames.

        `source` and `options` are the fields of RenderOptions (edtalk/options.py, which says what
        each does), or `source` is a whole RenderOptions. The output has one frame per 1/25 s of
        audio (or per lip-video frame), at 25 fps.
        """
        request = source if isinstance(source, RenderOptions) else RenderOptions(source=source, **options)
        if request.source is None:
            raise EDTalkError("no source given: a photo, an RGB image array or a video to re-dub")
        folder = tempfile.TemporaryDirectory(prefix="edtalk-render-")
        try:
            return self._render(request, folder)
        except BaseException:
            folder.cleanup()
            raise

    def _render(self, request: RenderOptions, folder: tempfile.TemporaryDirectory) -> Rendering:
        request = dataclasses.replace(request, audio=audio_file(request.audio, Path(folder.name)))
        plan = make_plan(request, self.facts(request))
        # everything that can fail without reading media fails now, before any frame is read
        for kind in plan.networks:
            self.motion.model(kind)
        exp_coefs = self.expression_weight(request.exp_type) if request.exp_type else None
        drivers = {"lip": request.lip, "pose": request.pose, "exp": request.exp}
        for part, path in [*drivers.items(), ("pose", request.pose_style)]:
            if path is not None and is_template(path):
                self.check_template(Path(path), [part])
        if request.lip is not None and request.audio is not None:
            audio_io.open_waveform(request.audio, sample_rate=None)  # only muxed: fail now, not after rendering
        for note in plan.notes:
            if note not in self._noted:
                self._noted.add(note)
                log.info("note: %s", note)

        lip = self.motion.lip(request.audio) if plan.lip_from_audio else None
        src = self.load_source(request.source, request.paste_back, None if lip is None else len(lip))
        coefs = self._all_driver_coefficients({k: v for k, v in drivers.items() if v is not None}, lip)
        lip = coefs.pop("lip", lip)
        if plan.exp_from_audio:
            exp_coefs = self.motion.expression(request.audio)
        exp_coefs = coefs.get("exp", exp_coefs)
        if exp_coefs is not None and plan.exp_scale != 1:
            exp_coefs = exp_coefs * plan.exp_scale
        pose = coefs.get("pose")
        if plan.pose_from_audio:
            args = (request.pose_temperature, request.seed, request.pose_style)
            pose = self.pose_from_audio(request.audio, len(lip), src, *args)
        restorer = self.restorer if plan.face_sr else None
        frames = generate(self.backend, src, lip, pose, exp_coefs, restorer, self.batch_size, self._render_bar)
        size = output_size(src, request.paste_back, restorer)
        storage = [s for s in (src.storage, folder) if s is not None]
        return Rendering(frames, len(lip), FPS, size, soundtrack(request.audio, request.lip), storage)

    def _all_driver_coefficients(self, paths: dict, lip: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Coefficients per part; a file that drives several parts is read and encoded once. The
        output length is that of `lip` (from audio) or else of the mouth video, which is read first;
        other drivers are read only as far as the output can use them."""
        by_file: dict[Path, list[str]] = {}
        for part, path in paths.items():
            by_file.setdefault(Path(path).resolve(), []).append(part)
        coefs = {}
        for path, parts in sorted(by_file.items(), key=lambda item: "lip" not in item[1]):
            limit = len(lip) if lip is not None else len(coefs["lip"]) if "lip" in coefs else None
            coefs.update(self.driver_coefficients(path, parts, limit))
        return coefs
