"""The web UI's page (Gradio): the header, one tab per demo mode, and the Render / Cancel buttons
wired to the render actions of edtalk.webui.Studio.

    demo = build_app("ckpts", device="auto")  # loads the models once; the queue is set up
    demo.launch()                              # http://127.0.0.1:7860
"""

# first: edtalk.webui sets Gradio's environment (no telemetry, offline) before gradio is imported
from .webui import (
    CACHE_LIFETIME,
    DEFAULT_EMOTION,
    DEFAULTS,
    FILE_BOX_HEIGHT,
    GENERATOR,
    MESH_FILES,
    MODES,
    NO_SECOND,
    OPTIONAL,
    PROGRESS,
    Studio,
)

# isort: split
import functools
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from .checkpoints import AUDIO2EXP_FILE, AUDIO2POSE_FILE, DEFAULT_CKPT_DIR, EXPRESSIONS
from .cli import SAMPLE_MOUTH_VIDEO, SAMPLE_PHOTO, SAMPLE_SPEECH
from .gfpgan import GFPGAN_FILE
from .live.tab import live_tab


def build_app(ckpt_dir: str | Path = DEFAULT_CKPT_DIR, device: str = "auto", live: bool = False) -> gr.Blocks:
    """Load the models from `ckpt_dir` once and return the page, its queue set up (see build_page)."""
    return build_page(Studio(ckpt_dir, device), live)


def build_page(studio: Studio, live: bool = False) -> gr.Blocks:
    """The page over `studio`: a header (what is missing, which options are on) and one tab per mode;
    `live`: also the "Live" tab (edtalk/live/tab.py; its page is served once app.py has called
    mount_live). Every render shares one queue slot: a second user waits and sees their place."""
    with gr.Blocks(title="EDTalk", analytics_enabled=False, delete_cache=CACHE_LIFETIME) as demo:
        gr.Markdown(_header(studio))
        with gr.Tab("Audio-driven"):
            _audio_tab(studio)
        with gr.Tab("Video-driven"):
            _video_tab(studio)
        with gr.Tab("Lip-pose model"):
            _lip_pose_tab(studio)
        with gr.Tab("Re-dub a video"):
            _redub_tab(studio)
        if studio.mesh is not None:
            with gr.Tab("3D (HiSTalk)"):
                _mesh_tab(studio)
        if live:
            live_tab()
    return demo.queue(default_concurrency_limit=1)


def _header(studio: Studio) -> str:
    """Markdown: what the app does, what to download for the modes that are off, the optional files."""
    lines = [
        "# EDTalk: a talking head from one photo",
        "Pick a mode, upload the inputs (or click an example) and press **Render**. Faces are found and "
        "aligned automatically; any audio format works.",
    ]
    if studio.problems:
        lines.append("\n**Missing checkpoints**: the modes that need them are switched off until the app restarts.")
        lines += [f"- {problem}" for problem in studio.problems]
    absent = [f"`{name}` ({what})" for name, what in OPTIONAL.items() if name not in studio.options]
    if absent:
        lines.append(f"\nMore options appear when these files are in `{studio.ckpt_dir}`: {', '.join(absent)}.")
    return "\n".join(lines)


def _file(label: str, elem_id: str | None = None) -> gr.File:
    """An upload box that hands the handler the file's path (any type: the pipeline says what is wrong)."""
    return gr.File(label=label, type="filepath", height=FILE_BOX_HEIGHT, elem_id=elem_id)


def _audio(label: str = "Speech (upload or record; any format)", elem_id: str | None = None) -> gr.Audio:
    return gr.Audio(sources=["upload", "microphone"], type="filepath", label=label, elem_id=elem_id)


def _expression_controls() -> dict:
    """Emotion (one of the eight, blended with a second one, scaled) or a reference clip; keys as Studio.request's."""
    with gr.Group():
        with gr.Row():
            emotion = gr.Dropdown(list(EXPRESSIONS), value=DEFAULT_EMOTION, label="Emotion")
            label = "Intensity (0 none, 1 as is, 2 exaggerated)"
            intensity = gr.Slider(0, 2, value=DEFAULTS["exp_scale"], step=0.05, label=label)
        with gr.Row():
            second = gr.Dropdown([NO_SECOND, *EXPRESSIONS], value=NO_SECOND, label="Mix with a second emotion")
            mix = gr.Slider(0, 1, value=0.5, step=0.05, label="Share of the second emotion")
        exp = _file("Expression reference image or video (optional; replaces the emotion)")
    return dict(emotion=emotion, exp_scale=intensity, second_emotion=second, mix=mix, exp=exp)


def _pose_from_audio(studio: Studio) -> dict:
    """Head pose from the audio, with seed and temperature: only with Audio2Pose.pt."""
    if AUDIO2POSE_FILE not in studio.options:
        return {}
    with gr.Group():
        label = f"Head pose from the audio when no pose video is given (enabled by {AUDIO2POSE_FILE})"
        on = gr.Checkbox(True, label=label)
        with gr.Row():
            seed = gr.Number(DEFAULTS["seed"], precision=0, label="Seed")
            label = "Temperature (0: the most likely motion)"
            temperature = gr.Slider(0, 1.5, value=DEFAULTS["pose_temperature"], step=0.05, label=label)
    return dict(pose_from_audio=on, seed=seed, pose_temperature=temperature)


def _exp_from_audio(studio: Studio) -> dict:
    """Expression from the audio: only with Audio2Exp.pt."""
    if AUDIO2EXP_FILE not in studio.options:
        return {}
    label = f"Expression from the audio (enabled by {AUDIO2EXP_FILE}; replaces the emotion and the reference)"
    return dict(exp_from_audio=gr.Checkbox(label=label))


def _look(studio: Studio, tab: str) -> dict:
    """Paste-back, and face restoration when GFPGANv1.4.pth is there."""
    paste_back = MODES[tab].start.get("paste_back", DEFAULTS["paste_back"])
    options = dict(paste_back=gr.Checkbox(paste_back, label="Paste back into the full photo / video frames"))
    if GFPGAN_FILE in studio.options:
        label = f"Restore the face (enabled by {GFPGAN_FILE}; slow on a CPU)"
        options["face_sr"] = gr.Checkbox(label=label)
    return options


def _action(render: Callable[..., str]) -> Callable:
    """A Render handler over render(values, progress, request) (Studio.render of a tab, or
    Studio.render_mesh): the controls' values come as keywords; it returns the video and the
    message box (a failed render's one-line reason stays there until the next render)."""

    def act(progress: gr.Progress = PROGRESS, request: gr.Request = None, **values):
        try:
            return render(values, progress, request), _message("")
        except gr.Error as failed:
            return None, _message(failed.message)

    return act


def _message(text: str) -> gr.Textbox:
    """The message box's update: `text` shown, or the box hidden when there is none."""
    return gr.Textbox(value=text, visible=bool(text))


def _actions(studio: Studio, tab: str, inputs: dict, render: Callable[..., str] | None = None) -> gr.Video:
    """Render and Cancel buttons, the result video and a message box (elem_id `<tab>-render`,
    `<tab>-cancel`, `<tab>-result`, `<tab>-message`), wired to `render` (default: Studio.render of
    tab `tab`) with `inputs` (keyword -> component). Without the model's checkpoint, what to download."""
    missing = studio.missing(MODES[tab].model) if tab in MODES else None
    if missing:
        gr.Markdown(f"**Switched off**: {missing}.")
    with gr.Row():
        button = gr.Button("Render", variant="primary", interactive=missing is None, elem_id=f"{tab}-render")
        cancel = gr.Button("Cancel", variant="stop", elem_id=f"{tab}-cancel")
    video = gr.Video(label="Result", buttons=["download"], interactive=False, autoplay=True, elem_id=f"{tab}-result")
    message = gr.Textbox(label="Message", interactive=False, visible=False, elem_id=f"{tab}-message")
    event = button.click(lambda: _message(""), outputs=message, queue=False, api_visibility="private").then(
        _action(render or functools.partial(studio.render, tab)),
        inputs_kwargs=inputs,
        outputs=[video, message],
        api_name=f"render_{tab.replace('-', '_')}",
        api_visibility="undocumented",
        concurrency_id=GENERATOR,
        concurrency_limit=1,
    )

    def stop(request: gr.Request):
        return _message(studio.cancel(request))

    cancel.click(stop, outputs=message, cancels=[event], queue=False, api_visibility="private")
    return video


def _audio_tab(studio: Studio) -> None:
    """Audio-driven, full model; its inputs also make the API endpoint `render`."""
    with gr.Row():
        with gr.Column():
            source = _file("Photo (or a video to re-dub)", "audio-source")
            audio = _audio(elem_id="audio-speech")
            pose = _file("Head-pose video or image (optional: the head stays still)")
            expression = _expression_controls()
            options = {**_pose_from_audio(studio), **_exp_from_audio(studio), **_look(studio, "audio")}
        with gr.Column():
            inputs = dict(source=source, audio=audio, pose=pose, **expression, **options)
            video = _actions(studio, "audio", inputs)
            gr.Examples([[str(SAMPLE_PHOTO), str(SAMPLE_SPEECH), "happy"]], [source, audio, expression["emotion"]])
    api = dict(source="source", audio="audio", pose_video="pose", emotion="emotion", intensity="exp_scale")
    gr.on(
        [],
        studio.render_api,
        inputs_kwargs={name: inputs[field] for name, field in dict(api, paste_back="paste_back").items()},
        outputs=video,
        api_name="render",
        concurrency_id=GENERATOR,
        concurrency_limit=1,
    )


def _video_tab(studio: Studio) -> None:
    """Video-driven, full model: mouth, pose and expression from videos; audio is only the soundtrack."""
    with gr.Row():
        with gr.Column():
            source = _file("Photo (or a video to re-dub)", "video-source")
            lip = _file("Mouth video (drives the mouth; its audio is the soundtrack)", "video-lip")
            pose = _file("Head-pose video or image (optional: the head stays still)")
            expression = _expression_controls()
            audio = _audio("Soundtrack (optional: the mouth video's own audio)")
            options = _look(studio, "video")
        with gr.Column():
            _actions(studio, "video", dict(source=source, lip=lip, pose=pose, audio=audio, **expression, **options))
            gr.Examples([[str(SAMPLE_PHOTO), str(SAMPLE_MOUTH_VIDEO)]], [source, lip])


def _lip_pose_tab(studio: Studio) -> None:
    """Lip-pose model (the source keeps its expression): still head, a pose video, or a mouth video."""
    with gr.Row():
        with gr.Column():
            source = _file("Photo (or a video to re-dub)", "lip-pose-source")
            audio = _audio("Speech (upload or record), or leave empty and give a mouth video", "lip-pose-speech")
            lip = _file("Mouth video (optional, instead of speech)", "lip-pose-lip")
            pose = _file("Head-pose video or image (optional: the head stays still)")
            options = {**_pose_from_audio(studio), **_look(studio, "lip-pose")}
        with gr.Column():
            _actions(studio, "lip-pose", dict(source=source, audio=audio, lip=lip, pose=pose, **options))
            photo, speech, mouth = str(SAMPLE_PHOTO), str(SAMPLE_SPEECH), str(SAMPLE_MOUTH_VIDEO)
            gr.Examples([[photo, speech, None], [photo, None, mouth]], [source, audio, lip])


def _redub_tab(studio: Studio) -> None:
    """Re-dub a video (lip-pose model): every frame keeps its pose and expression, the mouth follows the speech."""
    with gr.Row():
        with gr.Column():
            source = _file("Video to re-dub", "redub-source")
            audio = _audio("New speech (upload or record)", "redub-speech")
            options = _look(studio, "redub")
        with gr.Column():
            _actions(studio, "redub", dict(source=source, audio=audio, **options))
            gr.Examples([[str(SAMPLE_MOUTH_VIDEO), str(SAMPLE_SPEECH)]], [source, audio])


def _mesh_tab(studio: Studio) -> None:
    """3D (HiSTalk): speech drives a face mesh (a subject of the training set, or an uploaded mesh)."""
    with gr.Row():
        with gr.Column():
            speech = _audio(elem_id="mesh-speech")
            inputs = dict(speech=speech)
            if studio.subjects:
                label = "Face: a subject of the training set (an uploaded mesh replaces it)"
                inputs["subject"] = gr.Dropdown(studio.subjects, value=studio.subjects[0], label=label)
            label = "Face mesh (.ply / .obj, the model's topology; optional with a subject above)"
            inputs["mesh"] = gr.File(label=label, type="filepath", file_types=list(MESH_FILES), height=FILE_BOX_HEIGHT)
            styles = studio.mesh.styles
            label = "Speaking style: a training subject (empty: the face's own when it trained, else the first)"
            inputs["style"] = gr.Dropdown(styles, value=None, label=label)
        with gr.Column():
            _actions(studio, "mesh", inputs, studio.render_mesh)
            gr.Examples([[str(SAMPLE_SPEECH)]], [speech])
