"""Real JupyterLab and Debian's chromium for the browser tests (never `playwright install`),
and the process checks that prove everything they started is gone."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from helpers.ports import free_port
from helpers.settings import OFFLINE_MODEL_ID

from support import REPO, assert_none_left

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
HTTP_TIMEOUT_S = 10
# Some code cell of the notebook in front is queued or has run ([*] or [n]). textContent, not
# innerText: Run All scrolls to the end, and cells out of view are not rendered.
RUN_STARTED_JS = r"""() => [...document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')].some(
    prompt => /^\[(\*|\d+)\]:$/.test(prompt.textContent.trim()))"""


def _live_processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process that is not a zombie."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z":
            table[int(entry.name)] = (int(stat[1]), cmdline)
    return table


def descendants(root: int | None = None) -> dict[int, str]:
    """Live descendants of this process: pid -> command line."""
    table = _live_processes()
    found: dict[int, str] = {}
    frontier = {root or os.getpid()}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier and pid not in found}
        found.update({pid: table[pid][1] for pid in frontier})
    return found


def processes_mentioning(marker: str) -> dict[int, str]:
    return {pid: cmd for pid, (_, cmd) in _live_processes().items() if marker in cmd}


def assert_nothing_left(before: set[int], folder: Path) -> None:
    """Nothing a browser test started outlives it: no new descendant of this process (JupyterLab,
    its kernels, chromium, the Playwright driver) and no process naming its temporary folder."""
    def left() -> dict[int, str]:
        found = {pid: cmd for pid, cmd in descendants().items() if pid not in before}
        found.update(processes_mentioning(str(folder)))
        return found

    assert_none_left(left, "processes left behind")


@contextlib.contextmanager
def jupyterlab(root: Path, state: Path, server_url: str):
    """JupyterLab on a free 127.0.0.1 port with a random token; everything stopped after."""
    token = secrets.token_urlsafe(24)
    port = free_port()
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(  # no news pop-up, no network
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_TOKEN=token, NIM_BASE_URL=server_url,
               NIM_MODEL=OFFLINE_MODEL_ID,
               JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(state / "runtime"))
    for name in ("NVIDIA_API_KEY", "KIT_DISPLAY"):  # the display mode must be detected, not forced
        env.pop(name, None)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"token {token}"}
    log = (state / "jupyterlab.log").open("w")
    # cwd = the repo, as `llm-kit workshop` runs it: nbgrader's Validate reads nbgrader_config.py.
    lab = subprocess.Popen(command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert lab.poll() is None, (state / "jupyterlab.log").read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/api/status", headers=headers,
                             timeout=HTTP_TIMEOUT_S).status_code == 200:
                    break
            assert time.monotonic() < deadline, "JupyterLab did not start within 120 s"
            time.sleep(0.5)
        yield base, token
    finally:
        with contextlib.suppress(httpx.HTTPError):
            for kernel in httpx.get(f"{base}/api/kernels", headers=headers,
                                    timeout=HTTP_TIMEOUT_S).json():
                httpx.delete(f"{base}/api/kernels/{kernel['id']}", headers=headers, timeout=30)
            httpx.post(f"{base}/api/shutdown", headers=headers, timeout=HTTP_TIMEOUT_S)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(lab.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    lab.wait(timeout=10)
                    break
        log.close()


@contextlib.contextmanager
def chromium(profile: Path):
    """Debian's chromium, headless, with its profile in `profile` (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            context.set_default_timeout(60_000)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def open_notebook(page, base: str, token: str, name: str, workspace: str = "default") -> None:
    """Open `name` in a JupyterLab workspace of its own (no other notebook in front of it)."""
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}?token={token}", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) "
                           ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)


def run_all(page, screenshot: Path, tries: int = 3) -> None:
    """Run > Run All Cells on the notebook in front, and again if a slow page lost the click;
    fails (with a screenshot) when the first code cell never starts."""
    import pytest

    prompt = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .jp-InputPrompt").first
    for _ in range(tries):
        prompt.click()  # the notebook in focus: Run All runs the notebook in front
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if page.evaluate(RUN_STARTED_JS):
                return
            time.sleep(0.2)
        page.keyboard.press("Escape")  # close a menu left open
    page.screenshot(path=str(screenshot))
    pytest.fail(f"the notebook did not start running after {tries} tries of Run > Run All Cells")
