"""The web UI (edtalk/webui.py, app.py): the `render` API endpoint through gradio_client, bad uploads,
missing and optional checkpoints, cancelling, and the output folder; synthetic weights."""

import contextlib
import os
import re
import threading
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

import app  # noqa: E402
import demo_EDTalk_A  # noqa: E402
from edtalk.checkpoints import AUDIO2EXP_FILE, AUDIO2POSE_FILE, FULL, where_to_get  # noqa: E402
from edtalk.gfpgan import GFPGAN_FILE  # noqa: E402
from edtalk.options import RenderOptions, defaults  # noqa: E402
from edtalk.webui import HISTALK_FILE, HISTALK_TEMPLATES, MODES, Progress, Studio, expression_mix  # noqa: E402
from edtalk.webui_page import build_page  # noqa: E402
from histalk.meshes import write_ply, write_templates  # noqa: E402
from histalk.synthetic import grid_face  # noqa: E402
from networks.audio2exp import Audio2Exp  # noqa: E402
from networks.audio2pose import Audio2Pose  # noqa: E402
from networks.histalk import HiSTalk, HiSTalkConfig  # noqa: E402

from .conftest import MEDIA, ROOT  # noqa: E402
from .test_demos import ckpt_dir, probe  # noqa: E402, F401 (ckpt_dir is a fixture)

PHOTO = ROOT / "test_data" / "astronaut.jpg"
SPEECH = MEDIA / "speech_16k_e2e.wav"  # 0.49 s -> 12 frames at 25 fps
API = ["source", "audio", "pose_video", "emotion", "intensity", "paste_back"]


@contextlib.contextmanager
def serve(studio: Studio, gradio_dir):
    """The page over `studio` served on a free local port (Gradio's files under `gradio_dir`); its URL."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(gradio_dir))
        demo = build_page(studio)
        demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        try:
            yield demo.local_url
        finally:
            demo.close()


@pytest.fixture(scope="module")
def studio(ckpt_dir):  # noqa: F811
    return Studio(ckpt_dir, "cpu")


@pytest.fixture(scope="module")
def url(studio, tmp_path_factory):
    with serve(studio, tmp_path_factory.mktemp("gradio")) as address:
        yield address


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


def labels(demo: gr.Blocks) -> list[str]:
    return [str(c["props"].get("label")) for c in demo.config["components"]]


def markdown(demo: gr.Blocks) -> str:
    return "\n".join(str(c["props"]["value"]) for c in demo.config["components"] if c["type"] == "markdown")


def test_render_endpoint_writes_an_mp4_with_frames_and_sound(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/render"]
    assert [p["parameter_name"] for p in info["parameters"]] == API
    assert [p["parameter_default"] for p in info["parameters"]][2:] == [None, "neutral", 1.0, False]
    out = client.predict(
        source=handle_file(PHOTO), audio=handle_file(SPEECH), emotion="happy", intensity=0.8, api_name="/render"
    )
    assert out.endswith(".mp4")
    frames, fps, size, has_audio = probe(out)
    assert (frames, fps, has_audio) == (12, 25.0, True)
    assert size == (256, 256)


@pytest.mark.parametrize("bad", ["no face", "not audio", "empty audio"])
def test_a_bad_upload_gives_the_demos_one_line_message(bad, client, ckpt_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    Image.new("RGB", (200, 200), (128, 128, 128)).save(tmp_path / "gray.png")
    (tmp_path / "notes.wav").write_text("not a sound\n")
    (tmp_path / "empty.wav").write_bytes(b"")
    source, audio = {
        "no face": ("gray.png", SPEECH),
        "not audio": (PHOTO, "notes.wav"),
        "empty audio": (PHOTO, "empty.wav"),
    }[bad]
    monkeypatch.chdir(tmp_path)  # the demo is given the names, as a user in that folder would type them
    args = ["--source_path", source, "--audio_driving_path", audio, "--save_path", "out.mp4", "--quiet"]
    assert demo_EDTalk_A.main([*map(str, args), "--ckpt_dir", str(ckpt_dir)]) == 1
    expected = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(Exception) as caught:
        client.predict(source=handle_file(tmp_path / source), audio=handle_file(tmp_path / audio), api_name="/render")
    assert str(caught.value) == expected
    assert "\n" not in expected and "Traceback" not in expected


def test_a_failed_render_keeps_its_one_line_reason_in_the_result_area(client, tmp_path):
    Image.new("RGB", (200, 200), (128, 128, 128)).save(tmp_path / "gray.png")
    source, audio = handle_file(tmp_path / "gray.png"), handle_file(SPEECH)
    with pytest.raises(Exception) as caught:
        client.predict(source=source, audio=audio, api_name="/render")
    # the tab's own endpoint (undocumented: positional, in the order of its controls)
    tab = [source, audio, None, "happy", 1.0, "none", 0.5, None, False]
    video, message = client.predict(*tab, api_name="/render_audio")
    assert video is None and message["visible"]
    assert message["value"] == str(caught.value) == "no face found in gray.png"


def test_missing_checkpoints_do_not_stop_the_app_and_say_what_to_get(tmp_path):
    studio = Studio(tmp_path, "cpu")
    demo = build_page(studio)
    text = markdown(demo)
    for name in ("EDTalk.pt", "EDTalk_lip_pose.pt"):
        assert where_to_get(name, tmp_path) in text
    buttons = [
        c["props"] for c in demo.config["components"] if c["type"] == "button" and c["props"]["value"] == "Render"
    ]
    assert len(buttons) == 4 and not any(b["interactive"] for b in buttons)
    with pytest.raises(gr.Error, match="this mode needs EDTalk.pt: get EDTalk.pt with"):
        studio.render_api(str(PHOTO), str(SPEECH))


def test_the_live_tab_is_on_the_page_that_app_py_serves(tmp_path):
    studio = Studio(tmp_path, "cpu")
    assert "Live" in labels(build_page(studio, live=True)) and "Live" not in labels(build_page(studio))


def test_every_render_shares_one_queue_slot(tmp_path):
    demo = build_page(Studio(tmp_path, "cpu"))
    renders = [
        fn
        for fn in demo.fns.values()
        if fn.api_name in ("render", "render_audio", "render_video", "render_lip_pose", "render_redub")
    ]
    assert len(renders) == 5
    assert {(fn.concurrency_id, fn.concurrency_limit, fn.queue) for fn in renders} == {("generator", 1, True)}


def test_optional_checkpoints_show_their_options_and_drive_the_render(studio, ckpt_dir, tmp_path):  # noqa: F811
    plain = labels(build_page(studio))
    assert not [label for label in plain if any(name in label for name in (AUDIO2POSE_FILE, AUDIO2EXP_FILE))]
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for path in ckpt_dir.iterdir():
        (folder / path.name).symlink_to(path)
    torch.manual_seed(0)
    torch.save({"audio2pose": Audio2Pose(hidden=64, steps=4).state_dict()}, folder / AUDIO2POSE_FILE)
    torch.save({"audio2exp": Audio2Exp(width=64, depth=2).state_dict()}, folder / AUDIO2EXP_FILE)
    (folder / GFPGAN_FILE).write_bytes(b"not a checkpoint")
    with_options = Studio(folder, "cpu")
    page = build_page(with_options)
    found = labels(page)
    assert sum(AUDIO2POSE_FILE in label for label in found) == 2  # audio-driven and lip-pose tabs
    assert sum(AUDIO2EXP_FILE in label for label in found) == 1
    temperature = components(page, "slider", "Temperature (0: the most likely motion)")
    assert [c["value"] for c in temperature] == [defaults(RenderOptions)["pose_temperature"]] * 2
    assert not [label for label in found if GFPGAN_FILE in label]  # unreadable: reported, not offered
    assert f"cannot read GFPGAN checkpoint {folder / GFPGAN_FILE}" in markdown(page)
    values = dict(source=str(PHOTO), audio=str(SPEECH), seed=3, pose_temperature=0.5, exp_from_audio=True)
    out = with_options.render("audio", values)
    assert probe(out)[0] == 12


def components(demo: gr.Blocks, kind: str, label: str) -> list[dict]:
    return [c["props"] for c in demo.config["components"] if c["type"] == kind and c["props"]["label"] == label]


def test_controls_start_at_the_schema_defaults_and_the_tabs_differ_only_as_data(studio):
    page, start = build_page(studio), defaults(RenderOptions)
    intensity = components(page, "slider", "Intensity (0 none, 1 as is, 2 exaggerated)")
    assert [c["value"] for c in intensity] == [start["exp_scale"]] * 2  # audio- and video-driven tabs
    paste_back = components(page, "checkbox", "Paste back into the full photo / video frames")
    assert [c["value"] for c in paste_back] == [False, False, False, True]  # re-dubbing pastes back
    assert [MODES[tab].start.get("paste_back", start["paste_back"]) for tab in MODES] == [False, False, False, True]
    values = dict(source="a.jpg", lip="m.mp4", emotion="happy", second_emotion="sad", mix=0.25)
    assert studio.request("video", values) == RenderOptions(
        source="a.jpg", lip="m.mp4", exp_type="happy:0.75,sad:0.25", pose_from_audio=False, face_sr=False
    )
    reference = studio.request("audio", dict(source="a.jpg", audio="s.wav", exp="e.mp4", emotion="happy"))
    assert (reference.exp, reference.exp_type, reference.seed, reference.exp_scale) == ("e.mp4", None, 0, 1.0)


def histalk_checkpoint(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A tiny untrained HiSTalk.pt (subjects F2, F3) and its templates in `folder`; the face's (36, 3)
    vertices and triangles. (Untrained, it keeps the face still: its dense heads start at zero.)"""
    vertices, faces = grid_face(6, 6)
    cfg = HiSTalkConfig(num_vertices=len(vertices), num_styles=2, num_landmarks=6, d_model=16, heads=2, fps=25)
    model = HiSTalk(cfg, torch.arange(18).reshape(6, 3), torch.full((6, 3), 1 / 3))
    state = dict(histalk=model.state_dict(), histalk_config=cfg.to_dict(), styles=["F2", "F3"], wav2vec2_config=None)
    torch.save(dict(state, faces=torch.as_tensor(faces)), folder / HISTALK_FILE)
    write_templates(folder / HISTALK_TEMPLATES, {"F2": vertices, "F3": vertices + 0.05})
    return vertices, faces


def test_the_3d_tab_animates_a_mesh_when_a_histalk_checkpoint_is_there(tmp_path):
    plain = build_page(Studio(tmp_path, "cpu"))
    assert "3D (HiSTalk)" not in labels(plain) and f"`{HISTALK_FILE}`" in markdown(plain)
    vertices, faces = histalk_checkpoint(tmp_path)
    studio = Studio(tmp_path, "cpu")
    assert "3D (HiSTalk)" in labels(build_page(studio)) and studio.subjects == ["F2", "F3"]
    out = studio.render_mesh(dict(speech=str(SPEECH), subject="F3", style="F2"))
    assert probe(out) == (12, 25.0, (256, 256), True)
    assert np.load(Path(out).with_suffix(".npy")).shape == (12, 36 * 3)
    write_ply(tmp_path / "face.ply", vertices, faces)
    assert probe(studio.render_mesh(dict(speech=str(SPEECH), mesh=str(tmp_path / "face.ply"))))[0] == 12
    write_ply(tmp_path / "small.ply", *grid_face(3, 3))
    mistakes = {
        "small.ply": "--template_path small.ply: 9 vertices; the model was trained on 36",
        "face.pkl": "face.pkl: not a face mesh (give a .ply or .obj file)",  # an upload is never unpickled
        None: "no speech: upload or record the speech that drives the face",
    }
    for mesh, message in mistakes.items():
        speech = str(SPEECH) if mesh else None
        with pytest.raises(gr.Error) as caught:
            studio.render_mesh(dict(speech=speech, mesh=mesh and str(tmp_path / mesh)))
        assert caught.value.message == message


def test_expression_mix():
    assert expression_mix("happy") == "happy"
    assert expression_mix("happy", "none", 0.5) == "happy"
    assert expression_mix("happy", "surprised", 0.3) == "happy:0.7,surprised:0.3"
    assert expression_mix("happy", "surprised", 1.0) == "surprised"


class Request:
    """What the handlers read from Gradio's request: the session."""

    session_hash = "tester"


def test_cancel_stops_the_render_before_its_next_batch_and_writes_nothing(studio):
    reports = []

    def progress(value, desc=None, unit=None):
        reports.append((value, desc))
        if isinstance(value, tuple):  # the first batch is done: the user presses Cancel
            studio.cancel(Request())

    outputs = set(Path(studio._outputs.name).iterdir())
    with pytest.raises(gr.Error) as stopped:
        studio.render_api(str(PHOTO), str(SPEECH), progress=progress, request=Request())
    assert stopped.value.message == "cancelled: nothing was written"
    assert studio.cancel(Request()) == "cancelled: nothing was written"  # what the Cancel button shows
    assert reports[-1] == ((1, 12), "rendering, estimating the time left")
    assert set(Path(studio._outputs.name).iterdir()) == outputs


def test_progress_reports_frames_and_time_left():
    reports = []
    report = Progress(lambda value, desc, unit: reports.append((value, desc, unit)), threading.Event())
    report(4, 12)
    report(8, 12)
    assert reports[0] == ((4, 12), "rendering, estimating the time left", "frames")
    assert reports[1][0] == (8, 12) and re.fullmatch(r"rendering, about \d+ s left", reports[1][1])


def test_earlier_outputs_but_the_newest_are_deleted(studio):
    made = [studio._new_output(FULL) for _ in range(3)]
    for age, path in zip((300, 200, 0), made):
        path.write_bytes(b"mp4")
        os.utime(path, (time.time() - age, time.time() - age))
    studio._new_output(FULL)
    assert [p.exists() for p in made] == [False, False, True]


def test_app_help():
    with pytest.raises(SystemExit) as done:
        app.main(["--help"])
    assert done.value.code == 0
