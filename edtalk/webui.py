"""The web UI: every demo mode in the browser (Gradio), over one shared pipeline per model.

    studio = Studio("ckpts", device="auto")  # loads the models once
    demo = build_page(studio)                 # edtalk.webui_page: the page over it; demo.launch()

Tabs: audio-driven full model (a named emotion, mixed with a second one and scaled, or an
expression reference clip), video-driven full model, lip-pose model (still head, pose video or a
mouth video) and re-dubbing a video. Options that need an optional checkpoint (head pose or
expression from the audio, face restoration) appear only when that file is in the checkpoint
folder. A missing generator does not stop the app: the page says what to download and where.

One render runs at a time (the others wait in the queue and see their place); a progress bar shows
frames done / total and the time left, and Cancel stops a render within one batch, leaving no
partial file. A bad input shows the demos' one-line message in the page. Outputs are written to a
temporary folder that is removed at exit; Gradio's copies of uploads and outputs are deleted after
an hour. The audio-driven tab is also the API endpoint `render` (see README.md, "Web UI").
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported: no telemetry
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the app never reaches the Hugging Face Hub

import math  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

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
from .errors import CheckpointError, EDTalkError  # noqa: E402
from .face_align import FaceAligner  # noqa: E402
from .face_sr import FaceRestorer  # noqa: E402
from .gfpgan import GFPGAN_FILE, load_gfpgan  # noqa: E402
from .options import RenderOptions, defaults  # noqa: E402
from .output import write_mp4  # noqa: E402
from .pipeline import MODEL_FILES, TalkingHeadPipeline  # noqa: E402

# Optional checkpoints -> the option each one enables (shown only when the file is in the folder).
OPTIONAL = {
    AUDIO2POSE_FILE: "head pose from the audio",
    AUDIO2EXP_FILE: "expression from the audio",
    GFPGAN_FILE: "face restoration with GFPGAN",
}
NO_SOURCE = "no source: upload a photo (or, to re-dub, a video)"
NO_SECOND = "none"  # second-emotion choice: no mix
GENERATOR = "generator"  # concurrency group of every render: one at a time, whatever the tab or API
CACHE_LIFETIME = (600, 3600)  # Gradio's copies: every 10 min, delete those older than an hour
FILE_BOX_HEIGHT = 150  # px: room for the upload icon and the file's name, so that a tab fits on a screen
POSE_TEMPERATURE = defaults(RenderOptions)["pose_temperature"]  # the schema's default, for the sliders
PROGRESS = gr.Progress()  # the default that tells Gradio to pass a handler its progress tracker


class Cancelled(Exception):
    """The user pressed Cancel: the render stops before its next batch."""


def expression_mix(emotion: str, second_emotion: str | None = None, mix: float = 0.0) -> str:
    """The `exp_type` for TalkingHeadPipeline.render: `emotion`, or `emotion` blended with
    `second_emotion`, which gets the share `mix` (0..1), e.g. "happy:0.7,surprised:0.3"."""
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
        self._lock = threading.Lock()  # one render at a time, even while a cancelled one finishes its batch
        self._stops: dict[str, threading.Event] = {}  # session -> Cancel flag of its running render
        self._outputs = tempfile.TemporaryDirectory(prefix="edtalk-webui-")  # removed at exit

    def _load(self, load: Callable, *args) -> object | None:
        """load(*args), or None when it raises CheckpointError, whose line goes to `problems` (once)."""
        try:
            return load(*args)
        except CheckpointError as exc:
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
        restorer = FaceRestorer(gfpgan, batch_size=pipe.batch_size, aligner=FaceAligner())
        self.pipelines = {model: pipe.with_restorer(restorer) for model, pipe in self.pipelines.items()}

    def missing(self, model: str) -> str | None:
        """What to download for `model`, or None when its pipeline is loaded."""
        if model in self.pipelines:
            return None
        return f"this mode needs {MODEL_FILES[model]}: {where_to_get(MODEL_FILES[model], self.ckpt_dir)}"

    # ---- render actions (one per tab; the audio-driven one is also the API endpoint `render`) ----

    def render_audio(
        self,
        source: str | None,
        audio: str | None,
        pose_video: str | None = None,
        emotion: str = "neutral",
        intensity: float = 1.0,
        paste_back: bool = False,
        second_emotion: str = NO_SECOND,
        mix: float = 0.0,
        exp_video: str | None = None,
        progress: gr.Progress = PROGRESS,
        request: gr.Request = None,
        *,
        pose_from_audio: bool = True,
        seed: float = 0,
        temperature: float = POSE_TEMPERATURE,
        exp_from_audio: bool = False,
        face_sr: bool = False,
    ) -> str:
        """Audio-driven, full model: the mouth follows `audio`, the head `pose_video` (or stays
        still, or with Audio2Pose.pt moves with the speech unless `pose_from_audio` is off), the
        expression `emotion` (blended with `second_emotion`) or the reference `exp_video` or, with
        Audio2Exp.pt and `exp_from_audio`, the speech; scaled by `intensity`. Returns the mp4's path.

        (Gradio passes `progress` and `request` by position after the inputs; the options that
        exist only with an optional checkpoint are keyword-only, so they may be absent.)"""
        inputs = dict(source=source, audio=audio, pose=pose_video, paste_back=paste_back, exp_scale=intensity)
        inputs.update(self._audio_pose(pose_from_audio, seed, temperature))
        if exp_from_audio:
            inputs["exp_from_audio"] = True
        elif exp_video:
            inputs["exp"] = exp_video
        else:
            inputs["exp_type"] = expression_mix(emotion, second_emotion, mix)
        return self._render(FULL, inputs, face_sr, progress, request)

    def render_api(
        self,
        source: str | None,
        audio: str | None,
        pose_video: str | None = None,
        emotion: str = "neutral",
        intensity: float = 1.0,
        paste_back: bool = False,
        progress: gr.Progress = PROGRESS,
        request: gr.Request = None,
    ) -> str:
        """Audio-driven, full model (the API endpoint `render`): `source` photo or video, `audio`
        speech, optional `pose_video`, `emotion` (one of the eight) scaled by `intensity`, and
        `paste_back`. Returns the path of the mp4."""
        return self.render_audio(
            source, audio, pose_video, emotion, intensity, paste_back, progress=progress, request=request
        )

    def render_video(
        self,
        source: str | None,
        lip_video: str | None,
        pose_video: str | None = None,
        emotion: str = "neutral",
        intensity: float = 1.0,
        paste_back: bool = False,
        second_emotion: str = NO_SECOND,
        mix: float = 0.0,
        exp_video: str | None = None,
        audio: str | None = None,
        progress: gr.Progress = PROGRESS,
        request: gr.Request = None,
        *,
        face_sr: bool = False,
    ) -> str:
        """Video-driven, full model: mouth from `lip_video`, head from `pose_video`, expression as in
        render_audio; `audio` is the soundtrack (default: the mouth video's own)."""
        _require(source, NO_SOURCE)
        _require(lip_video, "no mouth video: upload the video whose mouth movements drive the face")
        inputs = dict(source=source, lip=lip_video, audio=audio, pose=pose_video, paste_back=paste_back)
        inputs.update(exp_scale=intensity, pose_from_audio=False)  # the audio is only the soundtrack here
        if exp_video:
            inputs["exp"] = exp_video
        else:
            inputs["exp_type"] = expression_mix(emotion, second_emotion, mix)
        return self._render(FULL, inputs, face_sr, progress, request)

    def render_lip_pose(
        self,
        source: str | None,
        audio: str | None = None,
        lip_video: str | None = None,
        pose_video: str | None = None,
        paste_back: bool = False,
        progress: gr.Progress = PROGRESS,
        request: gr.Request = None,
        *,
        pose_from_audio: bool = True,
        seed: float = 0,
        temperature: float = POSE_TEMPERATURE,
        face_sr: bool = False,
    ) -> str:
        """Lip-pose model (keeps the source's expression): the mouth follows `audio` or `lip_video`,
        the head `pose_video` (or stays still, or moves with the speech as in render_audio)."""
        inputs = dict(source=source, audio=audio, lip=lip_video, pose=pose_video, paste_back=paste_back)
        inputs.update(self._audio_pose(pose_from_audio, seed, temperature))
        return self._render(LIP_POSE, inputs, face_sr, progress, request)

    def redub(
        self,
        source: str | None,
        audio: str | None,
        paste_back: bool = True,
        progress: gr.Progress = PROGRESS,
        request: gr.Request = None,
        *,
        face_sr: bool = False,
    ) -> str:
        """Re-dub a video (lip-pose model): each frame keeps its pose and expression, the mouth follows `audio`."""
        return self._render(
            LIP_POSE, dict(source=source, audio=audio, paste_back=paste_back), face_sr, progress, request
        )

    def _audio_pose(self, wanted: bool, seed: float, temperature: float) -> dict:
        """render() arguments for head pose from the audio: as the demos do (when the source is a
        photo, no pose video is given and Audio2Pose.pt exists) if `wanted`, else off."""
        if not wanted or AUDIO2POSE_FILE not in self.options:
            return dict(pose_from_audio=False)  # off, and no log line about the missing file
        return dict(pose_from_audio=None, seed=int(seed), pose_temperature=temperature)

    def cancel(self, request: gr.Request = None) -> None:
        """Stop the session's running render before its next batch (queued ones are dropped by Gradio)."""
        stop = self._stops.get(_session(request))
        if stop is not None:
            stop.set()

    def _render(self, model: str, inputs: dict, face_sr: bool, progress: gr.Progress, request) -> str:
        """Render with the `model` pipeline into a new mp4 in the output folder; its path.

        User mistakes become a gr.Error with the demos' one-line message (uploaded files named by
        their file name, not their place in Gradio's cache).
        """
        _require(self.pipelines.get(model), self.missing(model))
        _require(inputs["source"], NO_SOURCE)
        session, stop = _session(request), threading.Event()
        self._stops[session] = stop
        try:
            if not self._lock.acquire(blocking=False):
                progress(0, desc="waiting for the cancelled render before this one to stop")
                self._lock.acquire()
            try:
                progress(0, desc="reading the inputs: finding the face, audio features, driving videos")
                pipe = self.pipelines[model]
                save_path = self._new_output(model)
                write_mp4(pipe, save_path, Progress(progress, stop), face_sr=face_sr, **inputs)
            finally:
                self._lock.release()
        except (EDTalkError, ValueError) as exc:
            raise gr.Error(_readable(str(exc), inputs), print_exception=False) from None
        except Cancelled:
            raise gr.Error("cancelled: nothing was written", print_exception=False) from None
        finally:
            if self._stops.get(session) is stop:  # a render that started after a cancel has its own
                del self._stops[session]
        return str(save_path)

    def _new_output(self, model: str) -> Path:
        """A fresh mp4 path in the output folder. Earlier outputs but the newest are deleted first:
        Gradio has copied them to its cache (the newest may still be being copied)."""
        folder = Path(self._outputs.name)
        for old in sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime)[:-1]:
            old.unlink(missing_ok=True)
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
