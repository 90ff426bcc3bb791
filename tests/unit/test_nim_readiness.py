"""Readiness while a NIM starts: it accepts no connection while it downloads and loads its model
(10–30 minutes the first time), so a configured NIM is waited for as long as the caller asked,
with a note that says so; the offline server and unknown hosts still fail fast. Real HTTP: a
port where nothing listens, then a server that starts answering there."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time

import pytest

from helpers import readiness
from helpers.friendly_errors import BackendNotReady
from helpers.ports import free_port
from helpers.readiness import check_backend, wait_until_ready
from helpers.settings import OFFLINE_MODEL_ID, WORKSHOP_MODEL, ConnectionSettings


class NimAnswering(http.server.BaseHTTPRequestHandler):
    """What a NIM answers once it is up: ready, and the model it serves."""

    def do_GET(self):
        bodies = {"/v1/health/ready": {"object": "health.response", "message": "Service is ready."},
                  "/v1/models": {"object": "list", "data": [{"id": WORKSHOP_MODEL}]}}
        if self.path not in bodies:
            self.send_error(404)
            return
        body = json.dumps(bodies[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def nim_starting_later(monkeypatch):
    """A port where nothing listens until a readiness probe has been refused there, and for
    `delay_s` after it; then a NIM answers there. Yields its settings."""
    servers = []
    refused = threading.Event()
    probe = readiness.check_ready

    def watched_probe(settings):
        found = probe(settings)
        if not found.ready:
            refused.set()
        return found

    monkeypatch.setattr(readiness, "check_ready", watched_probe)

    def start(delay_s: float) -> ConnectionSettings:
        port = free_port()

        def come_up():
            refused.wait(60)
            time.sleep(delay_s)
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), NimAnswering)
            servers.append(server)
            server.serve_forever(poll_interval=0.05)

        threading.Thread(target=come_up, daemon=True).start()
        return ConnectionSettings(f"http://127.0.0.1:{port}/v1", WORKSHOP_MODEL)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def ticking():
    """A clock that only the poll's sleeps move (the HTTP is real, the waiting is not)."""
    now = [0.0]
    return {"clock": lambda: now[0], "sleep": lambda s: now.__setitem__(0, now[0] + s)}


def test_a_starting_nim_is_waited_for_and_said_to_be_starting(nim_starting_later, capsys):
    settings = nim_starting_later(delay_s=1.5)
    assert settings.backend == "nim"
    started = time.monotonic()
    assert wait_until_ready(settings, timeout_s=60, poll_s=0.2).ready
    assert time.monotonic() - started >= 1.5
    out = capsys.readouterr().out
    note = out.splitlines()[0]
    assert note == (f"The NIM at {settings.base_url} is not up yet. A NIM's first start downloads "
                    "and loads the model, which takes 10–30 minutes; `docker compose logs -f llama` "
                    "shows how far it got. Waiting up to 60 s.")
    assert "the NIM is not up yet" in out and "make server" not in out
    waited = float(re.search(r"✅ Model server ready at \S+ \((\d+\.\d) s\)", out).group(1))
    assert waited >= 1.5


def test_check_backend_waits_for_a_starting_nim_too(nim_starting_later, monkeypatch, tmp_path, capsys):
    settings = nim_starting_later(delay_s=1.0)
    monkeypatch.chdir(tmp_path)  # no .env in sight
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    monkeypatch.setenv("NIM_BASE_URL", settings.base_url)
    monkeypatch.setenv("NIM_MODEL", WORKSHOP_MODEL)
    assert check_backend(timeout_s=60) == settings
    out = capsys.readouterr().out
    assert "Backend: a NIM" in out and "is not up yet" in out and "✅ Model server ready" in out


def test_a_nim_that_never_comes_up_is_waited_for_as_long_as_asked():
    settings = ConnectionSettings(f"http://127.0.0.1:{free_port()}/v1", WORKSHOP_MODEL)
    with pytest.raises(BackendNotReady) as info:
        wait_until_ready(settings, timeout_s=600, poll_s=30, quiet=True, **ticking())
    assert str(info.value) == (
        f"The NIM at {settings.base_url} is not up yet after 600 s: it accepts no connection while "
        "it starts. A NIM's first start downloads and loads the model, which takes 10–30 minutes; "
        "`docker compose logs -f llama` shows how far it got. Wait, then run this cell again "
        "(`check_backend(timeout_s=1800)` waits up to 30 minutes).")


def test_the_offline_server_and_unknown_hosts_still_fail_after_a_short_grace():
    offline = ConnectionSettings(f"http://127.0.0.1:{free_port()}/v1", OFFLINE_MODEL_ID)
    unknown = ConnectionSettings("http://no-such-nim.invalid:8000/v1", WORKSHOP_MODEL)
    for settings in (offline, unknown):
        with pytest.raises(BackendNotReady) as info:
            wait_until_ready(settings, timeout_s=600, poll_s=1, quiet=True, **ticking())
        message = str(info.value)
        assert message.startswith(f"No model server answers at {settings.base_url}"), message
        assert "make server" in message and "10–30 minutes" not in message
