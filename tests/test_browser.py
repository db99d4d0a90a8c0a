"""The web UI in a real browser: Debian's chromium, driven headless by Playwright for Python, uploads the
sample photo and a short speech clip, clicks Render and waits for the result video; synthetic weights.

Playwright is pointed at the system browser and never downloads one. Without chromium (.ci/run
installs it where apt-get can) or Playwright, this test skips and says why.
"""

import shutil

import pytest

from .test_app import PHOTO, SPEECH, serve, studio  # noqa: F401 (studio is a fixture)
from .test_demos import ckpt_dir  # noqa: F401 (a fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RENDER_TIMEOUT_MS = 120_000  # face detection + 12 frames on a busy 2-core CPU take about 20 s


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does)")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: the CI runs as root, where chromium's sandbox refuses to start
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_render_from_the_browser(browser, studio, tmp_path):  # noqa: F811
    with serve(studio, tmp_path / "gradio") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.set_input_files("#audio-source input[type=file]", PHOTO)
        page.set_input_files("#audio-speech input[type=file]", SPEECH)
        page.get_by_text(PHOTO.name).wait_for()  # the uploads are done
        page.locator("#audio-speech audio").first.wait_for(state="attached")
        page.click("#audio-render")
        page.wait_for_selector("#audio-result video[src]", timeout=RENDER_TIMEOUT_MS)
        source = page.get_attribute("#audio-result video", "src")
        assert source and ".mp4" in source
        assert page.locator(".toast-body.error").count() == 0
        page.screenshot(path=tmp_path / "webui.png", full_page=True)
        assert (tmp_path / "webui.png").stat().st_size > 10_000
