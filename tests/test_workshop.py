"""`llm-kit workshop`: backend choice, and the real thing — JupyterLab + offline server,
URL with token, Ctrl-C stops both."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers.ports import free_port, port_is_free
from llm_kit.offline.server import server_status, stop_server
from llm_kit.workshop import choose_backend, lab_command

REPO = Path(__file__).resolve().parent.parent
KIT = Path(sys.executable).parent / "llm-kit"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env in sight


def test_nothing_configured_means_offline(clean_env):
    settings, start_offline = choose_backend(8123)
    assert start_offline
    assert settings.base_url == "http://127.0.0.1:8123/v1"
    assert settings.backend == "offline"


def test_configured_but_unreachable_falls_back_to_offline(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("NIM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    settings, start_offline = choose_backend(8124)
    assert start_offline and settings.backend == "offline"
    assert "falling back to the offline model" in capsys.readouterr().out


def test_configured_and_reachable_is_used(clean_env, monkeypatch, offline_server):
    monkeypatch.setenv("NIM_BASE_URL", offline_server.base_url)
    monkeypatch.setenv("NIM_MODEL", "smollm2-135m-instruct")
    settings, start_offline = choose_backend(8125)
    assert not start_offline
    assert settings.base_url == offline_server.base_url


def test_lab_binds_loopback_by_default():
    command = lab_command(8888, "127.0.0.1")
    assert "--ip=127.0.0.1" in command and "--no-browser" in command
    if os.geteuid() == 0:
        assert "--allow-root" in command


@pytest.mark.timeout(240)
def test_workshop_serves_lab_with_token_and_stops_everything_on_ctrl_c(tmp_path):
    lab_port, server_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY", "JUPYTER_TOKEN")}
    process = subprocess.Popen([str(KIT), "workshop", "--port", str(lab_port),
                                "--server-port", str(server_port)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        url = log = None
        while time.monotonic() < deadline and log is None:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"Open: (http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=(\S+))", line)
            if match:
                url, token = match.group(1), match.group(2)
            if "JupyterLab log:" in line:
                log = line.split(":", 1)[1].strip()
        assert url, "no URL printed:\n" + "".join(lines)
        assert f":{lab_port}/lab/tree/notebooks/01_setup_and_first_call.ipynb" in url
        assert server_status(server_port).running, "the offline server was started"
        base = f"http://127.0.0.1:{lab_port}"
        assert httpx.get(f"{base}/api/contents", timeout=10).status_code == 403, "token required"
        listing = httpx.get(f"{base}/api/contents/notebooks", params={"token": token}, timeout=10)
        assert listing.status_code == 200
        names = {item["name"] for item in listing.json()["content"]}
        assert "02_streaming_and_batching.ipynb" in names
        assert token not in Path(log).read_text(), "the token must not be written to the log"

        process.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = process.communicate(timeout=60)
        lines.append(rest)
    finally:
        if process.poll() is None:  # a failed assertion above: still clean up everything
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stop_server(server_port, quiet=True)  # no-op when the workshop already stopped it
    output = "".join(lines)
    assert process.returncode == 0, output
    assert "Stopped the offline server" in output
    assert not server_status(server_port).running
    assert port_is_free("127.0.0.1", lab_port) and port_is_free("127.0.0.1", server_port)
