"""`make workshop`: pick a backend (NIM, hosted, or the offline server), then run JupyterLab."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from helpers.friendly_errors import KitError
from helpers.readiness import check_ready
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings, load_settings

from .offline.paths import run_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRST_NOTEBOOK = "notebooks/01_setup_and_first_call.ipynb"


def configured_backend(env: dict[str, str] | None = None) -> ConnectionSettings | None:
    """The NIM or hosted backend the user configured, or None (use the offline server)."""
    environ = dict(os.environ if env is None else env)
    settings = load_settings(env=environ)
    explicitly_set = bool(environ.get("NIM_BASE_URL") or environ.get("NVIDIA_API_KEY"))
    dotenv_set = settings.base_url != "http://llama:8000/v1" or settings.api_key
    if not (explicitly_set or dotenv_set):
        return None
    return settings


def choose_backend(server_port: int) -> tuple[ConnectionSettings, bool]:
    """(settings, start_offline): a reachable configured backend, else the offline server."""
    configured = configured_backend()
    if configured is not None:
        readiness = check_ready(configured)
        if readiness.state in ("ready", "loading"):
            print(f"Using the configured backend: {configured.base_url} ({configured.model})")
            return configured, False
        print(f"The configured backend {configured.base_url} is not usable ({readiness.state}); "
              "falling back to the offline model.")
    offline = ConnectionSettings(base_url=f"http://127.0.0.1:{server_port}/v1",
                                 model=OFFLINE_MODEL_ID)
    return offline, True


def lab_command(port: int, ip: str) -> list[str]:
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ip={ip}",
               f"--port={port}", "--port-retries=0", f"--ServerApp.root_dir={REPO_ROOT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def _wait_for_lab(url: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise KitError(f"JupyterLab exited during start-up (code {process.returncode}); "
                           "is the port taken? Try `make workshop KIT_LAB_PORT=8890`.")
        try:
            if httpx.get(f"{url}/api/status", timeout=1).status_code in (200, 403):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise KitError("JupyterLab did not start within 60 s.")


def run_workshop(lab_port: int = 8888, lab_ip: str | None = None, server_port: int = 8000,
                 dry_run: bool = False) -> int:
    """Start what is needed, print the URL, and stop it all on Ctrl-C."""
    from helpers.ports import port_is_free

    from .offline import server_status, start_server, stop_server

    ip = lab_ip or os.environ.get("KIT_LAB_IP", "127.0.0.1")
    settings, want_offline = choose_backend(server_port)
    if dry_run:
        print(f"backend: {settings.backend} {settings.base_url} {settings.model}")
        print("jupyterlab: " + " ".join(lab_command(lab_port, ip)))
        return 0
    if not port_is_free(ip if ip != "0.0.0.0" else "127.0.0.1", lab_port):
        raise KitError(f"Port {lab_port} is taken; run `make workshop KIT_LAB_PORT=8890`.")
    started_server = False
    if want_offline:
        if server_status(server_port).running:
            print(f"Reusing the offline server already running on port {server_port}.")
        else:
            start_server(port=server_port)
            started_server = True
    env = dict(os.environ, NIM_BASE_URL=settings.base_url, NIM_MODEL=settings.model,
               JUPYTER_TOKEN=os.environ.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24))
    host = "127.0.0.1" if ip in ("0.0.0.0", "") else ip
    base = f"http://{host}:{lab_port}"
    lab_log = run_dir() / f"jupyterlab-{lab_port}.log"
    with lab_log.open("w") as sink:  # the token is passed by env, so the log shows "token=..."
        lab = subprocess.Popen(lab_command(lab_port, ip), env=env, cwd=REPO_ROOT,
                               start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for_lab(base, lab)
        print("\n" + "=" * 72)
        print(f"JupyterLab is running with backend '{settings.backend}' ({settings.model}).")
        print(f"Open: {base}/lab/tree/{FIRST_NOTEBOOK}?token={env['JUPYTER_TOKEN']}")
        print("Press Ctrl-C here to stop JupyterLab" +
              (" and the offline model server." if started_server else "."))
        print(f"JupyterLab log: {lab_log}")
        print("=" * 72, flush=True)
        while lab.poll() is None:
            time.sleep(0.5)
        return lab.returncode or 0
    except KeyboardInterrupt:
        print("\nStopping…")
        return 0
    finally:
        if lab.poll() is None:
            lab.send_signal(signal.SIGTERM)
            try:
                lab.wait(15)
            except subprocess.TimeoutExpired:
                lab.kill()
                lab.wait()
        if started_server:
            stop_server(server_port)
