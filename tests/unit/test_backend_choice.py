"""`pick_backend`, the one place a kit command (the workshop, grading, benchmarks, the test
session) chooses its model server: the configured backend when it answers (a stub server on
127.0.0.1 here), else the offline server on the port, reused or started, and it says which.
Starting a real offline server is in tests/server/test_backend_choice_live.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

import llm_kit.offline as offline
from helpers.ports import free_port
from helpers.settings import OFFLINE_MODEL_ID, WORKSHOP_BASE_URL, ConnectionSettings
from llm_kit.backend import configured_backend, pick_backend

MODEL = "meta/llama-3.1-8b-instruct"


@pytest.fixture
def stub_nim():
    """A NIM-shaped server on 127.0.0.1 whose health answer the test sets (200, 503, ...)."""
    answer = {"health": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith("/models"):
                status, body = 200, {"data": [{"id": MODEL}]}
            elif self.path in ("/v1/health/ready", "/health"):
                status, body = answer["health"], {}
            else:
                status, body = 404, {}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings = ConnectionSettings(base_url=f"http://127.0.0.1:{server.server_port}/v1", model=MODEL)
    yield SimpleNamespace(settings=settings, answer=answer)
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def fake_offline(monkeypatch):
    """The offline server's manager, scripted: whether one runs on the port, and what was
    started and stopped."""
    state = SimpleNamespace(running=False, started=[], stopped=[])

    def server_status(port):
        return SimpleNamespace(running=state.running, port=port, pid=4242 if state.running else None,
                               base_url=f"http://127.0.0.1:{port}/v1", log=None)

    def start_server(port, quiet=False):
        state.started.append(port)
        state.running = True
        return server_status(port)

    def stop_server(port, quiet=False):
        state.stopped.append(port)
        state.running = False
        return True

    for name, fake in (("server_status", server_status), ("start_server", start_server),
                       ("stop_server", stop_server)):
        monkeypatch.setattr(offline, name, fake)
    return state


def test_a_configured_backend_that_answers_is_used_and_nothing_starts(stub_nim, fake_offline):
    said = []
    with pick_backend(8123, stub_nim.settings, say=said.append) as backend:
        assert backend.configured and backend.settings == stub_nim.settings
    assert said == [f"Using the configured backend: {stub_nim.settings.base_url} ({MODEL})"]
    assert fake_offline.started == fake_offline.stopped == []


def test_a_configured_nim_still_loading_is_used_too(stub_nim, fake_offline):
    stub_nim.answer["health"] = 503
    assert pick_backend(8123, stub_nim.settings, say=None).configured


@pytest.mark.parametrize("problem", ["unreachable", "error"])
def test_a_configured_backend_that_does_not_answer_falls_back_to_offline(stub_nim, problem):
    configured = stub_nim.settings
    if problem == "unreachable":
        configured = ConnectionSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", model=MODEL)
    else:
        stub_nim.answer["health"] = 500
    said = []
    backend = pick_backend(8124, configured, say=said.append)
    assert not backend.configured
    assert backend.settings == ConnectionSettings("http://127.0.0.1:8124/v1", OFFLINE_MODEL_ID)
    assert len(said) == 1 and f"({problem}); falling back to the offline model" in said[0]


def test_nothing_configured_starts_the_offline_server_and_stops_it_on_leaving(fake_offline):
    said = []
    backend = pick_backend(8125, say=said.append)
    assert not backend.configured and said == [] and fake_offline.started == []  # nothing yet
    with pytest.raises(RuntimeError), backend:
        assert backend.started and backend.server.running and fake_offline.started == [8125]
        raise RuntimeError("the command failed")  # stopped all the same
    assert fake_offline.stopped == [8125] and not backend.started
    assert said[0].startswith("Starting the offline server on port 8125")
    assert said[-1] == "Stopped the offline server on port 8125."


def test_a_running_offline_server_is_reused_and_left_running(fake_offline):
    fake_offline.running = True
    said = []
    with pick_backend(8126, say=said.append) as backend:
        assert backend.server.pid == 4242 and not backend.started
    assert fake_offline.started == fake_offline.stopped == [] and fake_offline.running
    assert said == ["Reusing the offline server already running on port 8126."]


def test_silent_when_asked(fake_offline, capsys):
    with pick_backend(8127, say=None):
        pass
    assert capsys.readouterr() == ("", "")


def test_the_workshop_address_alone_is_not_a_configuration(clean_env, tmp_path):
    (tmp_path / ".env").write_text(f"NIM_BASE_URL={WORKSHOP_BASE_URL}\n")
    assert configured_backend(env={}) is None  # the default, written down: nothing chosen
    (tmp_path / ".env").write_text("NIM_BASE_URL=http://gpu-box:8000/v1\n")
    assert configured_backend(env={}).base_url == "http://gpu-box:8000/v1"
    assert configured_backend(env={"NIM_BASE_URL": WORKSHOP_BASE_URL}).base_url == WORKSHOP_BASE_URL
