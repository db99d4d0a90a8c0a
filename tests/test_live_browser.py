"""The live page in a real browser: headless chromium with a fake microphone playing a speech wav opens the
web UI's Live tab and its page, starts, and receives a playing video whose frames change; synthetic weights.

Skips, saying why, where Playwright or chromium is missing (as tests/test_browser.py).
"""

import shutil

import gradio as gr
import numpy as np
import pytest
import soundfile

from edtalk import audio as audio_io
from edtalk.checkpoints import LIP_POSE
from edtalk.live.server import LiveService
from edtalk.live.tab import live_tab
from edtalk.live.webrtc import add_webrtc_routes
from edtalk.options import PipelineOptions

from .conftest import MEDIA

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT_MS = 120_000  # the first frames wait for the networks to load and warm up on a busy 2-core CPU
# A checksum of the video's current picture, read through a canvas.
SNAPSHOT = """() => {
  const video = document.querySelector("#video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  return context.getImageData(0, 0, canvas.width, canvas.height).data.reduce((a, b) => (a * 31 + b) % 1000003, 0);
}"""


@pytest.fixture(scope="module")
def microphone(tmp_path_factory):
    """A wav the fake microphone plays (chromium loops it): the speech sample at 48 kHz."""
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    speech = audio_io.load_wav(MEDIA / "speech_16k.wav")
    soundfile.write(path, np.repeat(speech, 3), 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(microphone):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does)")
    fake_media = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    args = ["--no-sandbox", *fake_media, f"--use-file-for-fake-audio-capture={microphone}"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def url(narrow_ckpts, tmp_path_factory):
    """A web UI page with only the Live tab, its live routes on the same server; its URL."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        with gr.Blocks() as demo, gr.Tabs():
            live_tab()
        demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        options = PipelineOptions(ckpt_dir=narrow_ckpts, model=LIP_POSE, device="cpu", precision="fp32", crop=False)
        add_webrtc_routes(demo.app, LiveService(options))
        try:
            yield demo.local_url
        finally:
            demo.close()


def test_the_live_tab_frames_the_live_page(browser, url):
    page = browser.new_page()
    page.goto(url)
    assert page.locator("#live-frame iframe").get_attribute("src") == "live/"


def test_the_microphone_makes_a_playing_video_whose_frames_change(browser, url):
    page = browser.new_page()
    page.goto(url + "live/")
    page.set_input_files("#photo", MEDIA / "identity_source.jpg")
    page.click("#start")
    playing = "() => { const v = document.querySelector('#video'); return v.readyState >= 2 && v.currentTime > 0; }"
    page.wait_for_function(playing, timeout=TIMEOUT_MS)
    first = page.evaluate(SNAPSHOT)
    page.wait_for_function(f"first => ({SNAPSHOT})() !== first", arg=first, timeout=TIMEOUT_MS, polling=100)
    page.wait_for_function("() => document.querySelector('#server-fps').textContent !== '-'", timeout=TIMEOUT_MS)
    assert page.text_content("#error") == ""
    assert float(page.text_content("#server-fps")) >= 0
    page.click("#stop")
    assert page.text_content("#state") == "stopped"
