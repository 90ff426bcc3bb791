"""`llm-kit workshop`: a configured backend that answers is used, and the real thing — JupyterLab
on the learners' copies with nbgrader's Validate only, the offline server, a URL with a token —
and Ctrl-C, SIGTERM and SIGHUP (to the command itself or to `make workshop`) stop the lab, its
kernels and the server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from jupyter_client import BlockingKernelClient
from nbgrader import __version__ as nbgrader_version

from helpers.ports import free_port, port_is_free
from helpers.settings import OFFLINE_MODEL_ID
from llm_kit.offline.server import server_status, stop_server
from llm_kit.workshop import NEWS, choose_backend

from support import REPO, assert_none_left, wait_until

KIT = Path(sys.executable).parent / "llm-kit"
STAMP = ".venv/.kit-installed"  # `make -o` it: the test must not reinstall the shared venv


def test_configured_and_reachable_is_used(clean_env, monkeypatch, offline_server):
    monkeypatch.setenv("NIM_BASE_URL", offline_server.base_url)
    monkeypatch.setenv("NIM_MODEL", OFFLINE_MODEL_ID)
    settings, start_offline = choose_backend(8125)
    assert not start_offline
    assert settings.base_url == offline_server.base_url


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start(command: list[str], cwd: Path, env: dict) -> tuple[subprocess.Popen, list[str], dict]:
    """Run the workshop in its own session until it prints its URL and log path."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, found = [], {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and "log" not in found:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"Open: (http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=(\S+))", line)
        if match:
            found.update(url=match.group(1), token=match.group(2))
        if "JupyterLab log:" in line:
            found["log"] = line.split(":", 1)[1].strip()
    assert "url" in found, "no URL printed:\n" + "".join(lines)
    return process, lines, found


def stop(process: subprocess.Popen, how: signal.Signals, group: bool) -> str:
    (os.killpg if group else os.kill)(process.pid, how)
    rest, _ = process.communicate(timeout=90)
    return rest


def kernel_pid(base: str, auth: dict, runtime: Path, check_import: bool) -> int:
    """Open the first notebook's kernel through the lab's REST API, as the browser does; its pid."""
    session = httpx.post(f"{base}/api/sessions", headers=auth, timeout=60, json={
        "path": "01_setup_and_first_call.ipynb", "type": "notebook", "name": "",
        "kernel": {"name": "python3"}}).json()
    kernel = session["kernel"]
    connection = runtime / f"kernel-{kernel['id']}.json"
    wait_until(connection.is_file, 60, "the kernel's connection file")
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        client.kernel_info(reply=True, timeout=60)  # the kernel answers: it is ready
        code = "import os, helpers; print(os.getpid(), os.getcwd(), helpers.__file__)"
        texts = []
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: texts.append(
            msg["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
    pid, cwd, helpers_file = "".join(texts).split()
    if check_import:  # rooted in notebooks/, the kernel still imports the (editable) helpers
        assert Path(cwd) == REPO / "notebooks"
        assert Path(helpers_file).parent == REPO / "helpers"
    return int(pid)


CASES = {  # id: (command, signal, to the whole process group?)
    "kit-ctrl-c": ("kit", signal.SIGINT, False),
    "kit-sigterm": ("kit", signal.SIGTERM, False),
    "kit-sighup": ("kit", signal.SIGHUP, False),
    "make-sigterm": ("make", signal.SIGTERM, False),  # make passes SIGTERM on to its recipe
    "make-sighup": ("make", signal.SIGHUP, True),  # a closed terminal hangs up its process group
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(CASES))
def test_workshop_runs_the_learners_lab_and_a_signal_stops_everything(case, tmp_path):
    how, sig, group = CASES[case]
    lab_port, server_port = free_port(), free_port()
    runtime = tmp_path / "runtime"
    env = {k: v for k, v in os.environ.items()
           if k not in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY", "JUPYTER_TOKEN")}
    env.update(JUPYTER_RUNTIME_DIR=str(runtime), KIT_LAB_PORT=str(lab_port),
               KIT_SERVER_PORT=str(server_port))
    if how == "kit":
        command, cwd = [str(KIT), "workshop"], tmp_path
    else:
        make = shutil.which("make")
        assert make, "make is not installed"
        command, cwd = [make, "-s", "-o", STAMP, "workshop"], REPO
    process, lines, found = start(command, cwd, env)
    rest, lab_pids = "", []
    try:
        assert f":{lab_port}/lab/tree/01_setup_and_first_call.ipynb?token=" in found["url"]
        server = server_status(server_port)
        assert server.running, "the offline server was started"
        base, token = f"http://127.0.0.1:{lab_port}", found["token"]
        auth = {"Authorization": f"token {token}"}  # not in the URL: URLs are logged
        lab_pids = [p.pid for p in psutil.Process(process.pid).children(recursive=True)
                    if "jupyterlab" in " ".join(p.cmdline())]
        assert lab_pids, "JupyterLab runs as a child of the workshop"
        kernel = kernel_pid(base, auth, runtime, check_import=case == "kit-ctrl-c")
        if case == "kit-ctrl-c":
            assert httpx.get(f"{base}/api/contents", timeout=10).status_code == 403, "token required"
            listing = httpx.get(f"{base}/api/contents", headers=auth, timeout=10)
            names = {item["name"] for item in listing.json()["content"]}
            assert "02_streaming_and_batching.ipynb" in names
            assert not names & {"solutions", "tests", "course", "llm_kit"}, names
            assert httpx.get(f"{base}/api/contents/solutions", headers=auth,
                             timeout=10).status_code == 404
            assert httpx.get(f"{base}/nbgrader_version", headers=auth, params={"version": nbgrader_version},
                             timeout=10).status_code != 404, "Validate's server side is on"
            assert httpx.get(f"{base}/formgrader/api/status", headers=auth,
                             timeout=10).status_code == 404, "no formgrader for learners"
            page = httpx.get(f"{base}/lab", headers=auth, timeout=10).text
            config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page,
                                          re.DOTALL).group(1))
            assert config["news"] == {"disabled": True}
            disabled = set(config["disabledExtensions"])
            assert {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader", NEWS} <= disabled
            assert "@jupyter/nbgrader:validate-assignment" not in disabled
            assert token not in Path(found["log"]).read_text(), "the token must not be in the log"
        rest = stop(process, sig, group)
    finally:
        if process.poll() is None:  # a failed assertion above: still clean up everything
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        stop_server(server_port, quiet=True)  # no-op when the workshop already stopped it
    output = "".join(lines) + rest
    assert "Stopped the offline server" in output, output
    if how == "kit":
        assert process.returncode == 0, output
    assert_none_left(lambda: [p for p in [*lab_pids, kernel] if alive(p)],
                     "JupyterLab or its kernel survived")
    assert_none_left(lambda: [server.pid] if alive(server.pid) else [], "the offline server survived")
    assert not server_status(server_port).running
    assert_none_left(lambda: [p for p in (lab_port, server_port) if not port_is_free("127.0.0.1", p)],
                     "ports still taken")
