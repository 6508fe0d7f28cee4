"""deepshop serve's page in a real browser: Debian's Chromium (never a downloaded one), headless,
driven by Playwright, against `deepshop serve` started as a subprocess on 127.0.0.1.  The test picks a
photo, chooses styles with the keyboard, runs a job, follows the progress bar to the end, checks the
result's size, the before/after slider and the download link, that nothing is fetched from another
origin and that a phone-width window needs no sideways scrolling; it takes screenshots at 1280 and
390 px (into $DEEPSHOP_SCREENSHOTS when set: docs/images/serve_*.jpg were made so)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no system Chromium (Debian: apt-get install chromium)", allow_module_level=True)
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no `playwright install`)")

from serve_helpers import identity  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve_browser")
    model = identity(folder / "identity.onnx")
    port = _free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "deepshop_native", "serve", "--port", str(port), "--device", "cpu",
                             "--tile", "192", "--model", model], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                pass
            assert proc.poll() is None, (folder / "server.log").read_text()
            assert time.monotonic() < end, "the server did not start"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    with playwright_api.sync_playwright() as p:
        # A new, empty profile; the system Chromium, no browser download.
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       headless=True, args=CHROMIUM_ARGS,
                                                       viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


def test_the_page_stylizes_a_photo(server, browser, tmp_path):
    from skimage import data
    photo = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)             # 451 x 300
    shots = Path(os.environ.get("DEEPSHOP_SCREENSHOTS") or tmp_path)
    page = browser.new_page()
    requests, problems = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server + "/")

    items = page.locator(".style-item")
    items.first.wait_for()
    assert items.count() == 2 and items.nth(0).get_attribute("aria-pressed") == "true"
    page.wait_for_function("[...document.querySelectorAll('.style-item img')].every(i => i.complete && i.naturalWidth)")
    assert page.locator("#painting-input").is_disabled()   # no model here takes a painting

    # Keyboard: Tab reaches the photo picker first, then the gallery; Space and Enter choose a style.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "photo-input"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.name") == "default_style"
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert items.nth(1).get_attribute("aria-pressed") == "true" and items.nth(0).get_attribute("aria-pressed") == "false"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    assert items.nth(0).get_attribute("aria-pressed") == "true"
    assert page.locator("#go").is_disabled()                # no photo yet

    page.set_input_files("#photo-input", str(photo))
    page.select_option("#size", "")                         # full size
    page.locator("#strength").fill("0.9")
    assert page.inner_text("#strength-value") == "90%"
    page.locator("#go").focus()
    page.keyboard.press("Enter")
    end = time.monotonic() + 180
    while not page.locator("#result").is_visible():
        assert page.inner_text("#error") == "", page.inner_text("#error")
        assert time.monotonic() < end, "no result"
        time.sleep(0.05)
    bar = page.evaluate("[document.getElementById('progress').value, document.getElementById('progress').max]")
    assert bar[0] == bar[1] > 1                             # several tiles, all done
    assert page.inner_text("#status") == "Done."
    size = page.evaluate("[document.getElementById('after').naturalWidth, document.getElementById('after').naturalHeight]")
    assert size == [451, 300]
    assert page.get_attribute("#download", "download") == "chelsea_styled.png"
    assert page.get_attribute("#download", "href").startswith("blob:")
    page.locator("#compare-range").fill("20")
    assert "80%" in page.evaluate("document.getElementById('before-clip').style.clipPath")
    page.locator("#compare-range").fill("50")
    page.screenshot(path=str(shots / "serve_desktop.jpg"), full_page=True, quality=80)

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390     # no sideways scrolling
    page.screenshot(path=str(shots / "serve_phone.jpg"), full_page=True, quality=80)
    assert all(u.startswith(server) or u.startswith(("blob:", "data:")) for u in requests), requests
    assert problems == []
