"""The live before/after widget in a real JupyterLab, driven in headless Chromium.

The test starts JupyterLab on localhost (its own token, port and configuration folders), writes a small
notebook that shows :func:`expolib.book.figures.show_comparison` on two small photos, opens it in Debian's
Chromium through Playwright, runs all cells, then drags the slider and picks the other photo, and checks
each time that the widget's ``<img>`` shows a new image, with the pixels the kernel composed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from PIL import Image

from conftest import CHROMIUM_ARGS
from expolib.book.figures import split_image

SERVER_START_S = 90
UI_TIMEOUT_MS = 90_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The photos, built the same way in the notebook's kernel and here (to know what the widget must show).
PHOTOS_SOURCE = """\
import numpy as np
from skimage import data

photos = {"astronaut": data.astronaut()[::8, ::8].copy(), "chelsea": data.chelsea()[::6, ::6].copy()}
samples = {
    (name, -1.0): {"input": (photo * 0.35).astype(np.uint8), "corrected": photo, "ground truth": photo}
    for name, photo in photos.items()
}
"""
SHOW_SOURCE = """\
from expolib.book.figures import show_comparison

viewer = show_comparison(samples, width=256, static=False)
"""


class Lab:
    """Where the test's JupyterLab listens, and its REST API."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.notebook_url = f"{base}/lab/tree/widget.ipynb?token={token}"

    def api(self, path: str) -> Any:
        """``GET /api/<path>`` as JSON, or None while the server does not answer."""
        headers = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.base}/api/{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_for_idle_kernel(self, timeout_s: float = UI_TIMEOUT_MS / 1000) -> None:
        """Until the notebook's kernel has started and is idle."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sessions = self.api("sessions") or []
            if any(s.get("kernel", {}).get("execution_state") == "idle" for s in sessions):
                return
            time.sleep(0.5)
        pytest.fail(f"the notebook's kernel was not idle within {timeout_s:.0f} s")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """The notebook's kernel starts when it opens (no "Select Kernel" dialog); no news or update checks
    (there is no network) and no notification pop-ups over the notebook."""
    settings = {
        "notebook-extension/tracker": '{"autoStartDefaultKernel": true}',
        "apputils-extension/notification": (
            '{"fetchNews": "false", "checkForUpdates": false, "doNotDisturbMode": true}'
        ),
    }
    for plugin, text in settings.items():
        target = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(PHOTOS_SOURCE), nbformat.v4.new_code_cell(SHOW_SOURCE)]
    nbformat.write(notebook, str(path))


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; whatever of its process group is left is killed."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)  # the group is the server's own (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass
    server.wait(timeout=10)


@pytest.fixture()
def jupyterlab(tmp_path: Path) -> Iterator[Lab]:
    """A JupyterLab server on localhost serving ``tmp_path/root`` with the notebook ``widget.ipynb``."""
    import matplotlib

    root = tmp_path / "root"
    root.mkdir()
    _write_notebook(root / "widget.ipynb")
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        MPLCONFIGDIR=matplotlib.get_configdir(),  # keep the font cache: a new HOME would rebuild it
    )
    _write_settings(tmp_path / "lab-settings")
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp_path / "jupyterlab.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False", "--allow-root",  # CI runs as root
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    lab = Lab(f"http://127.0.0.1:{port}", token)
    log_path = tmp_path / "jupyterlab.log"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while lab.api("status") is None:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in {SERVER_START_S} s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield lab
    finally:
        _stop(server)
        log.close()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _expected(name: str, position: float) -> np.ndarray:
    """What the kernel composes for ``name`` at ``position`` (left: the input, right: the correction)."""
    scope: dict = {}
    exec(PHOTOS_SOURCE, scope)
    sample = scope["samples"][(name, -1.0)]
    return split_image(sample["input"], sample["corrected"], position)


IMG = ".jp-OutputArea-output img.widget-image"
FETCH_IMAGE = """async (img) => {
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text);
}"""


def _shown(page) -> np.ndarray:
    """The pixels of the image the widget's <img> displays now."""
    png = base64.b64decode(page.locator(IMG).evaluate(FETCH_IMAGE))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _wait_for_image(page, old_src: str, name: str, position: Callable[[], float]) -> str:
    """Until the <img> has a new ``src`` showing ``name`` split at ``position()``; returns that ``src``.

    Several updates may arrive in turn (a drag sends intermediate values), so the check is repeated
    until the image shown is the one expected for the controls' final state.
    """
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while True:
        src = page.locator(IMG).get_attribute("src")
        if src and src != old_src:
            shown, expected = _shown(page), _expected(name, position())
            if shown.shape == expected.shape and (shown == expected).all():
                return src
        if time.monotonic() > deadline:
            pytest.fail(f"the widget's image did not change to {name!r} at {position()}")
        time.sleep(0.25)


def _run_all_cells(page, tries: int = 3) -> None:
    """Run > Run All Cells, as a reader does, until the first cell is seen running or done.

    A click made while the page is still connecting to the kernel can be lost; it is then repeated.
    Should JupyterLab ask which kernel to use, the preferred one is accepted.
    """
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(tries):
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            accept = page.locator(".jp-Dialog .jp-mod-accept")
            if accept.is_visible():
                accept.click()
            if re.search(r"\[[*0-9]+\]", first_prompt.inner_text()):
                return
            time.sleep(0.25)
    pytest.fail("the notebook's cells did not run after Run > Run All Cells")


def test_the_widget_follows_the_slider_and_the_photo_choice_in_jupyterlab(
    chromium: str, sync_api, jupyterlab: Lab, tmp_path: Path
) -> None:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            page.goto(jupyterlab.notebook_url)
            page.locator(".jp-Notebook").wait_for()
            jupyterlab.wait_for_idle_kernel()
            _run_all_cells(page)

            image = page.locator(IMG)
            image.wait_for(state="visible")
            src = image.get_attribute("src")
            assert src
            np.testing.assert_array_equal(_shown(page), _expected("astronaut", 0.5))

            # Drag the slider's handle to about 90 % of its track.
            handle = page.locator(".widget-slider .noUi-handle")
            track = page.locator(".widget-slider .noUi-target").bounding_box()
            start = handle.bounding_box()
            assert track is not None and start is not None
            page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
            page.mouse.down()
            page.mouse.move(track["x"] + 0.9 * track["width"], start["y"] + start["height"] / 2, steps=8)
            page.mouse.up()
            readout = page.locator(".widget-slider .widget-readout")

            def position() -> float:
                return float(readout.inner_text())

            src = _wait_for_image(page, src, "astronaut", position)
            assert 0.75 < position() <= 1.0

            # Pick the other photo in the "photo" drop-down.
            page.locator(".widget-dropdown", has_text="photo").locator("select").select_option("chelsea")
            new_src = _wait_for_image(page, src, "chelsea", position)
            assert new_src != src and _shown(page).shape == (50, 76, 3)
        except BaseException:  # pytest.fail too: keep what the page showed, next to the server's log
            try:
                page.screenshot(path=str(tmp_path / "jupyterlab.png"))
            except Exception:
                pass
            raise
        finally:
            browser.close()
