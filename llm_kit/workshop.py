"""`make workshop`: pick a backend (NIM, hosted, or the offline server), then run JupyterLab.

Learners get a lab rooted at notebooks/ (their copies) with only nbgrader's Validate button;
`make instructor` opens the repository root with nbgrader's instructor tools. Ctrl-C, SIGTERM and
SIGHUP all stop JupyterLab, its kernels and the offline server the command started.
"""

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
import psutil

from helpers.friendly_errors import KitError
from helpers.settings import ConnectionSettings
from helpers.waiting import poll_until

from .backend import configured_backend, pick_backend
from .offline.paths import run_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
FIRST_NOTEBOOK = "01_setup_and_first_call.ipynb"
# nbgrader's lab plugins and server extensions a learner does not get (Validate stays). The kit
# uses no nbgrader exchange, so the assignment list would only show an error.
INSTRUCTOR_PLUGINS = ["create-assignment", "formgrader", "course-list", "assignment-list", "menu"]
INSTRUCTOR_SERVER_EXTENSIONS = ["formgrader", "course_list", "assignment_list"]
NEWS = "@jupyterlab/apputils-extension:announcements"  # fetches news from the internet
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def choose_backend(server_port: int) -> tuple[ConnectionSettings, bool]:
    """(settings, start_offline): what `make workshop` would use (`pick_backend`), starting
    nothing."""
    chosen = pick_backend(server_port, configured_backend())
    return chosen.settings, not chosen.configured


def lab_command(port: int, ip: str, instructor: bool = False) -> list[str]:
    """JupyterLab for learners (notebooks/, Validate only) or instructors (the repo, all tools)."""
    root = REPO_ROOT if instructor else NOTEBOOKS
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ip={ip}",
               f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if not instructor:
        command += [f"--ServerApp.jpserver_extensions=nbgrader.server_extensions.{name}=False"
                    for name in INSTRUCTOR_SERVER_EXTENSIONS]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def lab_config_dir(instructor: bool) -> Path:
    """A Jupyter config dir for this lab only (JUPYTER_CONFIG_PATH), never the user's own:
    it disables the news plugin and, for learners, nbgrader's instructor plugins."""
    disabled = [NEWS] + ([] if instructor else [f"@jupyter/nbgrader:{p}" for p in INSTRUCTOR_PLUGINS])
    folder = run_dir() / ("lab-config-instructor" if instructor else "lab-config-learner")
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in disabled}}, indent=1))
    return folder


def _wait_for_lab(url: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    def answers(_waited: float) -> bool | None:
        if process.poll() is not None:
            raise KitError(f"JupyterLab exited during start-up (code {process.returncode}); "
                           "is the port taken? Try `make workshop KIT_LAB_PORT=8890`.")
        try:
            return httpx.get(f"{url}/api/status", timeout=1).status_code in (200, 403) or None
        except httpx.TransportError:
            return None

    try:
        poll_until(answers, timeout_s=timeout_s, interval_s=0.3)
    except TimeoutError:
        raise KitError(f"JupyterLab did not start within {timeout_s:.0f} s.") from None


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C does."""


def raise_stop(signum, frame) -> None:
    raise Stop(signal.Signals(signum).name)


def run_workshop(lab_port: int = 8888, lab_ip: str | None = None, server_port: int = 8000,
                 dry_run: bool = False, instructor: bool = False) -> int:
    """Start what is needed, print the URL, and stop it all on Ctrl-C, SIGTERM or SIGHUP."""
    from helpers.ports import port_is_free

    ip = lab_ip or os.environ.get("KIT_LAB_IP", "127.0.0.1")
    backend = pick_backend(server_port, configured_backend())
    settings = backend.settings
    if dry_run:
        print(f"backend: {settings.backend} {settings.base_url} {settings.model}")
        print("jupyterlab: " + " ".join(lab_command(lab_port, ip, instructor)))
        return 0
    if not port_is_free(ip if ip != "0.0.0.0" else "127.0.0.1", lab_port):
        raise KitError(f"Port {lab_port} is taken; run `make workshop KIT_LAB_PORT=8890`.")
    previous = {sig: signal.signal(sig, raise_stop) for sig in STOP_SIGNALS}
    server, lab = contextlib.ExitStack(), None
    try:
        server.enter_context(backend)  # reuses or starts the offline server when that is the choice
        lab, url, log = _start_lab(settings, lab_port, ip, instructor)
        print("\n" + "=" * 72)
        print(f"JupyterLab is running with backend '{settings.backend}' ({settings.model})"
              + (", instructor tools on." if instructor else "."))
        print(f"Open: {url}")
        print("Press Ctrl-C here to stop JupyterLab" +
              (" and the offline model server." if backend.started else "."))
        print(f"JupyterLab log: {log}")
        print("=" * 72, flush=True)
        while lab.poll() is None:
            time.sleep(0.5)
        return lab.returncode or 0
    except (KeyboardInterrupt, Stop) as reason:
        print(f"\nStopping ({reason or 'Ctrl-C'})…", flush=True)
        return 0
    finally:
        for sig in STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        if lab is not None:
            stop_process_tree(lab)
        server.close()  # stops the offline server if it was started here
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_lab(settings: ConnectionSettings, lab_port: int, ip: str,
               instructor: bool) -> tuple[subprocess.Popen, str, Path]:
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
    config = str(lab_config_dir(instructor))
    env = dict(os.environ, NIM_BASE_URL=settings.base_url, NIM_MODEL=settings.model,
               JUPYTER_TOKEN=token, JUPYTER_CONFIG_PATH=os.pathsep.join(
                   [config, *filter(None, [os.environ.get("JUPYTER_CONFIG_PATH")])]))
    host = "127.0.0.1" if ip in ("0.0.0.0", "") else ip
    base = f"http://{host}:{lab_port}"
    lab_log = run_dir() / f"jupyterlab-{lab_port}.log"
    with lab_log.open("w") as sink:  # the token is passed by env, so the log shows "token=..."
        # cwd = the repo: nbgrader's Validate reads nbgrader_config.py from there
        lab = subprocess.Popen(lab_command(lab_port, ip, instructor), env=env, cwd=REPO_ROOT,
                               start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for_lab(base, lab)
    except BaseException:
        stop_process_tree(lab)
        raise
    first = f"notebooks/{FIRST_NOTEBOOK}" if instructor else FIRST_NOTEBOOK
    return lab, f"{base}/lab/tree/{first}?token={token}", lab_log


def stop_process_tree(lab: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM a process (JupyterLab, a hub) so it shuts its own children down (kernels, servers),
    then end whatever of it and its descendants is left."""
    try:
        family = psutil.Process(lab.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if lab.poll() is None:
        lab.send_signal(signal.SIGTERM)
        try:
            lab.wait(grace_s)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
    _, alive = psutil.wait_procs(family, timeout=5)
    for process in alive:  # a kernel JupyterLab did not get to
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
