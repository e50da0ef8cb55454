"""A real JupyterLab in a real browser: Debian's chromium driven by Playwright.

The server runs on 127.0.0.1 with a random token over a temporary copy of ``notebooks/`` (the
browser runs and saves the copies, never the committed notebooks), with its own settings: cells
are never virtualised (``windowingMode: none``, so every cell's output is in the page), the
notebook's kernel starts without the "Select Kernel" dialog, and news checks are off (the network
is closed). Playwright cannot download its own browser here; it drives the system's chromium
through ``executable_path``. Without it, these tests skip saying how to get it (``.ci/run``
installs it, so CI always runs them).

Screenshots go to a temporary directory, or to ``$LIFELAB_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SERVER_START_S = 120.0

# Chromium's background services try to reach Google at start; on a closed network those
# connections fail by the dozen, so they are switched off (and the sandbox, which needs a
# non-root user namespace containers rarely give).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

HOW_TO_ENABLE = (
    "browser tests need Debian's chromium: `apt-get install chromium` (or set "
    "LIFELAB_CHROMIUM=/path/to/chromium); Playwright's own browser download is not used"
)


def chromium_path() -> str | None:
    """The system chromium: $LIFELAB_CHROMIUM, else `chromium` or `chromium-browser` on PATH."""
    given = os.environ.get("LIFELAB_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    values = {
        "@jupyterlab/notebook-extension/tracker": {
            "windowingMode": "none",
            "autoStartDefaultKernel": True,
        },
        "@jupyterlab/apputils-extension/notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for key, value in values.items():
        plugin, name = key.rsplit("/", 1)
        folder = settings / plugin
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(value))


class JupyterLab:
    """A JupyterLab server started for the tests; ``url(name)`` opens a notebook copy."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        settings = root.parent / "lab-settings"
        _write_settings(settings)
        env = dict(
            os.environ,
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(root.parent / "lab-workspaces"),
            JUPYTER_RUNTIME_DIR=str(root.parent / "jupyter-runtime"),
        )
        jupyter = Path(sys.executable).with_name("jupyter")
        cmd = [
            str(jupyter) if jupyter.exists() else "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers run as root; JupyterLab refuses without it
        self._log = log.open("w")
        self.process = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._wait_up()

    def _wait_up(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        status = f"http://127.0.0.1:{self.port}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: see {self.log}")
            try:
                with urllib.request.urlopen(status, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_S} s: see {self.log}")

    def url(self, notebook: str) -> str:
        """The notebook alone in a new workspace: a restored workspace would reopen the tabs
        of earlier tests, and a menu command could reach one of those instead."""
        workspace = f"t{secrets.token_hex(4)}"
        return (
            f"http://127.0.0.1:{self.port}/lab/workspaces/{workspace}/tree/{notebook}"
            f"?reset&token={self.token}"
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip(HOW_TO_ENABLE)
    return path


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("LIFELAB_SCREENSHOTS")
    path = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    server = JupyterLab(root, base / "jupyterlab.log")
    yield server
    server.close()


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, screenshots: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page; its last state is saved as ``<test name>.png`` whatever the outcome."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    try:
        page.screenshot(path=str(screenshots / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
