"""The web UI: every demo mode in the browser (Gradio), over one shared pipeline per model.

    studio = Studio("ckpts", device="auto")  # loads the models once
    demo = build_page(studio)                 # edtalk.webui_page: the page over it; demo.launch()

Tabs: audio-driven full model (a named emotion, mixed with a second one and scaled, or an
expression reference clip), video-driven full model, lip-pose model (still head, pose video or a
mouth video) and re-dubbing a video. Options that need an optional checkpoint (head pose or
expression from the audio, face restoration) appear only when that file is in the checkpoint
folder. A missing generator does not stop the app: the page says what to download and where.

Every tab renders through one path, Studio.render: the tab's controls' values, keyed by the
RenderOptions fields they set (edtalk/options.py, whose defaults are the controls' start values),
become one RenderOptions; how the tabs differ (model, required uploads, fixed fields) is data in
MODES.

One render runs at a time (the others wait in the queue and see their place); a progress bar shows
frames done / total and the time left, and Cancel stops a render within one batch, leaving no
partial file ("cancelled: nothing was written"). A bad input shows the demos' one-line message in
the result area until the next render. Outputs are written to a temporary folder that is removed
at exit; Gradio's copies of uploads and outputs are deleted after an hour. The audio-driven render
is also the API endpoint `render` (see docs/webui.md).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the app never reaches the Hugging Face Hub

import functools  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from histalk import MeshAnimator  # noqa: E402
from histalk.meshes import read_templates  # noqa: E402

from .checkpoints import (  # noqa: E402
    AUDIO2EXP_FILE,
    AUDIO2POSE_FILE,
    DEFAULT_CKPT_DIR,
    EXPRESSION_DIR,
    EXPRESSIONS,
    FULL,
    LIP_POSE,
    load_expression_weights,
    where_to_get,
)
from .device import resolve_device  # noqa: E402
from .errors import CheckpointError, EDTalkError  # noqa: E402
from .face_align import FaceAligner  # noqa: E402
from .face_sr import FaceRestorer  # noqa: E402
from .gfpgan import GFPGAN_FILE, load_gfpgan  # noqa: E402
from .options import PipelineOptions, RenderOptions, defaults  # noqa: E402
from .output import write_mp4  # noqa: E402
from .pipeline import MODEL_FILES, TalkingHeadPipeline  # noqa: E402

HISTALK_FILE = "HiSTalk.pt"  # the 3D tab's model (a train/train_histalk.py checkpoint, e.g. best.pt, renamed)
HISTALK_TEMPLATES = "HiSTalk_templates.pkl"  # its training set's templates.pkl: the subjects offered as faces
# Optional checkpoints -> the option each one enables (shown only when the file is in the folder).
OPTIONAL = {
    AUDIO2POSE_FILE: "head pose from the audio",
    AUDIO2EXP_FILE: "expression from the audio",
    GFPGAN_FILE: "face restoration with GFPGAN",
    HISTALK_FILE: "the 3D tab: a HiSTalk checkpoint from train/train_histalk.py",
}
NO_SOURCE = "no source: upload a photo (or, to re-dub, a video)"
NO_MOUTH_VIDEO = "no mouth video: upload the video whose mouth movements drive the face"
NO_SPEECH = "no speech: upload or record the speech that drives the face"
NO_MESH = (
    f"no face: upload a .ply or .obj face mesh of the model's topology (or put the training set's templates.pkl "
    f"into the checkpoint folder as {HISTALK_TEMPLATES} and pick a subject)"
)
MESH_FILES = (".ply", ".obj")  # the face meshes the 3D tab takes as uploads
NO_SECOND = "none"  # second-emotion choice: no mix
DEFAULT_EMOTION = "neutral"  # the emotion control's start value
CANCELLED = "cancelled: nothing was written"
DEFAULTS = defaults(RenderOptions)  # the schema's defaults: where the controls start
GENERATOR = "generator"  # concurrency group of every render: one at a time, whatever the tab or API
CACHE_LIFETIME = (600, 3600)  # Gradio's copies: every 10 min, delete those older than an hour
FILE_BOX_HEIGHT = 150  # px: room for the upload icon and the file's name, so that a tab fits on a screen
PROGRESS = gr.Progress()  # the default that tells Gradio to pass a handler its progress tracker


@dataclass(frozen=True)
class Mode:
    """How one tab differs from the others: the model it renders with, the uploads it cannot do
    without (RenderOptions field -> what to say), the RenderOptions fields it sets itself, and the
    controls whose start value is not the schema's default."""

    model: str
    required: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    start: dict[str, Any] = field(default_factory=dict)


MODES = {
    "audio": Mode(FULL),
    "video": Mode(FULL, {"lip": NO_MOUTH_VIDEO}, {"pose_from_audio": False}),  # the audio is only the soundtrack
    "lip-pose": Mode(LIP_POSE),
    "redub": Mode(LIP_POSE, start={"paste_back": True}),  # a video's frames keep their background
}


class Cancelled(Exception):
    """The user pressed Cancel: the render stops before its next batch."""


def expression_mix(emotion: str, second_emotion: str | None = None, mix: float = 0.0) -> str:
    """The `exp_type` for TalkingHeadPipeline.render: `emotion`, or `emotion` blended with
    `second_emotion`, which gets the share `mix` (0..1), e.g. "happy:0.6,surprised:0.4"."""
    if not second_emotion or second_emotion in (NO_SECOND, emotion) or mix <= 0:
        return emotion
    if mix >= 1:
        return second_emotion
    return f"{emotion}:{1 - mix:.3g},{second_emotion}:{mix:.3g}"


class Progress:
    """Reports frames done / total and the time left to a gr.Progress; raises Cancelled once `stop` is set."""

    def __init__(self, progress: gr.Progress, stop: threading.Event):
        self.progress = progress
        self.stop = stop
        self.first = None  # (time, frames done) at the first batch: the rate is measured from there

    def __call__(self, done: int, total: int) -> None:
        if self.stop.is_set():
            raise Cancelled
        now = time.monotonic()
        if self.first is None:
            self.first = (now, done)
            left = "estimating the time left"
        else:
            start, before = self.first
            left = f"about {math.ceil((total - done) * (now - start) / (done - before))} s left"
        self.progress((done, total), desc=f"rendering, {left}", unit="frames")


class Studio:
    """The models, loaded once and shared by every user, and the render actions of the page.

    One pipeline per model kind ('full': EDTalk.pt, 'lip_pose': EDTalk_lip_pose.pt) that could be
    loaded; `problems` holds one line per checkpoint that could not (what to download and where).
    """

    def __init__(self, ckpt_dir: str | Path = DEFAULT_CKPT_DIR, device: str = "auto"):
        self.ckpt_dir = Path(ckpt_dir)
        self.pipelines: dict[str, TalkingHeadPipeline] = {}
        self.problems: list[str] = []
        for model in MODEL_FILES:
            try:
                self.pipelines[model] = TalkingHeadPipeline(self.ckpt_dir, model, device, progress=False)
            except CheckpointError as exc:
                self.problems.append(str(exc))
        self.options = {name for name in OPTIONAL if (self.ckpt_dir / name).is_file()}
        self._load_audio_models()
        self._load_restorer()
        self._load_mesh(device)
        self._lock = threading.Lock()  # one render at a time, even while a cancelled one finishes its batch
        self._stops: dict[str, threading.Event] = {}  # session -> Cancel flag of its running render
        self._outputs = tempfile.TemporaryDirectory(prefix="edtalk-webui-")  # removed at exit

    def _load(self, load: Callable, *args) -> object | None:
        """load(*args), or None when it raises EDTalkError, whose line goes to `problems` (once)."""
        try:
            return load(*args)
        except EDTalkError as exc:
            if str(exc) not in self.problems:
                self.problems.append(str(exc))
            return None

    def _load_audio_models(self) -> None:
        """Load the audio networks now, not on the first render: Audio2Lip, and Audio2Pose / Audio2Exp
        when their files are there (one that cannot be loaded loses its option); check the emotions."""
        for pipe in self.pipelines.values():
            self._load(pipe.motion.model, "lip")
            if AUDIO2POSE_FILE in self.options and self._load(pipe.motion.model, "pose") is None:
                self.options.discard(AUDIO2POSE_FILE)
            if pipe.generator.has_expression and AUDIO2EXP_FILE in self.options:
                if self._load(pipe.motion.model, "exp") is None:
                    self.options.discard(AUDIO2EXP_FILE)
        if FULL in self.pipelines:
            self._load(load_expression_weights, self.ckpt_dir / EXPRESSION_DIR, EXPRESSIONS)

    def _load_restorer(self) -> None:
        """GFPGAN (when its file is there), loaded once and given to both pipelines, which use it in
        the renders that ask for it (render(face_sr=True)); without it the option is left out."""
        pipe = next(iter(self.pipelines.values()), None)
        gfpgan = None
        if GFPGAN_FILE in self.options and pipe is not None:
            gfpgan = self._load(load_gfpgan, self.ckpt_dir / GFPGAN_FILE, pipe.device)
        if gfpgan is None:
            self.options.discard(GFPGAN_FILE)
            return
        blend = defaults(PipelineOptions)["sr_blend"]
        restorer = FaceRestorer(gfpgan, blend, batch_size=pipe.batch_size, aligner=FaceAligner())
        self.pipelines = {model: pipe.with_restorer(restorer) for model, pipe in self.pipelines.items()}

    def _load_mesh(self, device: str) -> None:
        """The 3D tab's HiSTalk model (`mesh`, None without HiSTalk.pt) and the subjects of its
        templates (`subjects`: those of HiSTalk_templates.pkl, when it is there)."""
        self.mesh, self.subjects = None, []
        if HISTALK_FILE in self.options:
            self.mesh = self._load(MeshAnimator.load, self.ckpt_dir / HISTALK_FILE, resolve_device(device))
        if self.mesh is None:
            self.options.discard(HISTALK_FILE)
        elif (self.ckpt_dir / HISTALK_TEMPLATES).is_file():
            self.subjects = list(self._load(read_templates, self.ckpt_dir / HISTALK_TEMPLATES) or ())

    def missing(self, model: str) -> str | None:
        """What to download for `model`, or None when its pipeline is loaded."""
        if model in self.pipelines:
            return None
        return f"this mode needs {MODEL_FILES[model]}: {where_to_get(MODEL_FILES[model], self.ckpt_dir)}"

    # ---- rendering: one path for every tab (MODES says how they differ) and the API endpoint `render` ----

    def render(self, tab: str, values: dict, progress: gr.Progress = PROGRESS, request: gr.Request = None) -> str:
        """Render with the controls' `values` of tab `tab` (a key of MODES; see `request` for the keys)
        into a new mp4 in the output folder; its path. Raises gr.Error with the demos' one-line message."""
        mode = MODES[tab]
        _require(self.pipelines.get(mode.model), self.missing(mode.model))
        for name, message in {"source": NO_SOURCE, **mode.required}.items():
            _require(values.get(name), message)
        pipe, options = self.pipelines[mode.model], self.request(tab, values)
        work = functools.partial(write_mp4, pipe, request=options)
        return self.run(work, mode.model, values, progress, request)

    def render_api(
        self,
        source: str | None,
        audio: str | None,
        pose_video: str | None = None,
        emotion: str = DEFAULT_EMOTION,
        intensity: float = DEFAULTS["exp_scale"],
        paste_back: bool = DEFAULTS["paste_back"],
        progress: gr.Progress = PROGRESS,
        request: gr.Request = None,
    ) -> str:
        """The API endpoint `render` (audio-driven, full model): `source` photo or video, `audio`
        speech, optional `pose_video`, `emotion` (one of the eight) scaled by `intensity`, and
        `paste_back`. Returns the path of the mp4."""
        values = dict(source=source, audio=audio, pose=pose_video, emotion=emotion, exp_scale=intensity)
        return self.render("audio", dict(values, paste_back=paste_back), progress, request)

    def render_mesh(self, values: dict, progress: gr.Progress = PROGRESS, request: gr.Request = None) -> str:
        """The 3D tab (HiSTalk): `speech` drives a face mesh, the uploaded `mesh` (.ply / .obj) or the
        `subject` of HiSTalk_templates.pkl, speaking in the style of training subject `style` (None:
        the subject's own, else the first); a new mp4 of the shaded mesh with the speech, its path."""
        _require(self.mesh, f"the 3D tab needs {HISTALK_FILE} in {self.ckpt_dir}")
        _require(values.get("speech"), NO_SPEECH)
        uploaded = values.get("mesh")
        _require(uploaded or (self.subjects and values.get("subject")), NO_MESH)
        if uploaded and Path(uploaded).suffix.lower() not in MESH_FILES:  # never unpickle an upload
            raise gr.Error(f"{Path(uploaded).name}: not a face mesh (give a .ply or .obj file)", print_exception=False)
        template = uploaded or self.ckpt_dir / HISTALK_TEMPLATES
        subject, style = None if uploaded else values["subject"], values.get("style") or None

        def work(save_path: Path, on_frame: Progress) -> None:
            self.mesh.render(values["speech"], save_path, template, subject, style, on_progress=on_frame)

        return self.run(work, "histalk", values, progress, request)

    def request(self, tab: str, values: dict) -> RenderOptions:
        """The RenderOptions of tab `tab` from its controls' values, keyed by RenderOptions field, and
        `emotion`, `second_emotion`, `mix`, which make `exp_type` (see expression_mix). The expression
        from the audio replaces the reference and the emotion; the reference replaces the emotion. A
        ticked (or absent) `pose_from_audio` lets the head move with the speech as the demos decide,
        when Audio2Pose.pt is loaded. Face restoration is off unless `face_sr` is ticked."""
        values = dict(values)
        emotion = values.pop("emotion", None)
        mix = expression_mix(emotion, values.pop("second_emotion", NO_SECOND), values.pop("mix", 0.0))
        if values.get("exp_from_audio"):
            values["exp"] = None
        elif emotion and not values.get("exp"):
            values["exp_type"] = mix
        audio_pose = values.pop("pose_from_audio", True) and AUDIO2POSE_FILE in self.options
        values.update(pose_from_audio=None if audio_pose else False, seed=int(values.get("seed", DEFAULTS["seed"])))
        values.setdefault("face_sr", False)
        return RenderOptions(**{**values, **MODES[tab].fixed})

    def cancel(self, request: gr.Request = None) -> str:
        """Stop the session's running render before its next batch (queued ones are dropped by Gradio);
        the message for the page."""
        stop = self._stops.get(_session(request))
        if stop is not None:
            stop.set()
        return CANCELLED

    def run(self, work: Callable[[Path, Progress], object], name: str, values: dict, progress, request) -> str:
        """work(save_path, on_batch): write a new mp4 (named after `name`) in the output folder, one
        render at a time, with progress and Cancel; its path. User mistakes become a gr.Error with the
        demos' one-line message (uploads in `values` named by their file name, not their place in
        Gradio's cache)."""
        session, stop = _session(request), threading.Event()
        self._stops[session] = stop
        try:
            if not self._lock.acquire(blocking=False):
                progress(0, desc="waiting for the cancelled render before this one to stop")
                self._lock.acquire()
            try:
                progress(0, desc="reading the inputs")
                save_path = self._new_output(name)
                work(save_path, Progress(progress, stop))
            finally:
                self._lock.release()
        except (EDTalkError, ValueError) as exc:
            raise gr.Error(_readable(str(exc), values), print_exception=False) from None
        except Cancelled:
            raise gr.Error(CANCELLED, print_exception=False) from None
        finally:
            if self._stops.get(session) is stop:  # a render that started after a cancel has its own
                del self._stops[session]
        return str(save_path)

    def _new_output(self, model: str) -> Path:
        """A fresh mp4 path in the output folder (a 3D render writes its .npy beside it). Earlier
        outputs but the newest are deleted first: Gradio has copied them to its cache (the newest
        may still be being copied)."""
        folder = Path(self._outputs.name)
        for old in sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime)[:-1]:
            old.unlink(missing_ok=True)
            old.with_suffix(".npy").unlink(missing_ok=True)  # the 3D tab's vertices
        return folder / f"edtalk-{model.replace('_', '-')}-{uuid.uuid4().hex[:8]}.mp4"


def _require(value, message: str) -> None:
    """gr.Error(message) unless `value` (an upload, a loaded model) is there."""
    if not value:
        raise gr.Error(message, print_exception=False)


def _session(request: gr.Request | None) -> str:
    return request.session_hash if request is not None and request.session_hash else ""


def _readable(message: str, inputs: dict) -> str:
    """`message` with each uploaded file's path (in Gradio's cache) replaced by its file name."""
    for value in inputs.values():
        if isinstance(value, str) and os.sep in value:
            message = message.replace(value, Path(value).name)
    return message
