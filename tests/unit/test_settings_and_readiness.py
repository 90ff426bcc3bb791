"""Connection settings from env/.env, readiness against real HTTP stubs on 127.0.0.1."""

import http.server
import os
import threading

import pytest

from helpers.friendly_errors import BackendNotReady, KitError
from helpers.readiness import check_ready, wait_until_ready
from helpers.settings import (
    HOSTED_BASE_URL,
    OFFLINE_MODEL_ID,
    WORKSHOP_BASE_URL,
    WORKSHOP_MODEL,
    ConnectionSettings,
    load_settings,
)


def test_defaults_to_the_workshop_nim(tmp_path):
    settings = load_settings(env={}, dotenv=tmp_path / "none")
    assert (settings.base_url, settings.model) == (WORKSHOP_BASE_URL, WORKSHOP_MODEL)
    assert settings.backend == "nim"


def test_unconfigured_notebooks_find_the_offline_server_running_here(monkeypatch, tmp_path):
    """`make server`, then any kernel: with nothing configured, the local offline server is used
    when it listens on its default port, the workshop NIM otherwise."""
    from helpers import settings as settings_module

    for name in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    probed = []
    monkeypatch.setattr(settings_module, "port_open", lambda port: probed.append(port) or True)
    found = load_settings(dotenv=tmp_path / "none")
    assert (found.base_url, found.model, found.backend) == (
        settings_module.OFFLINE_BASE_URL, settings_module.OFFLINE_MODEL_ID, "offline")
    assert probed == [settings_module.OFFLINE_PORT]
    monkeypatch.setattr(settings_module, "port_open", lambda port: False)
    assert load_settings(dotenv=tmp_path / "none").base_url == WORKSHOP_BASE_URL
    monkeypatch.setattr(settings_module, "port_open", lambda port: True)
    monkeypatch.setenv("NIM_BASE_URL", "http://gpu-box:8000/v1")  # a configured backend wins
    assert load_settings(dotenv=tmp_path / "none").base_url == "http://gpu-box:8000/v1"


def test_env_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nNIM_BASE_URL=http://from-file:1/v1\nNIM_MODEL='file-model'\n")
    settings = load_settings(env={"NIM_BASE_URL": "http://env:2/v1/"}, dotenv=dotenv)
    assert settings.base_url == "http://env:2/v1"
    assert settings.model == "file-model"


def test_key_alone_selects_hosted_catalog_and_is_never_printed(tmp_path):
    settings = load_settings(env={"NVIDIA_API_KEY": "nvapi-secret"}, dotenv=tmp_path / "x")
    assert settings.base_url == HOSTED_BASE_URL
    assert settings.backend == "hosted"
    assert "nvapi-secret" not in repr(settings)
    assert "nvapi-secret" not in settings.describe()


def test_offline_backend_says_it_is_tiny_and_often_wrong():
    settings = ConnectionSettings("http://127.0.0.1:8000/v1", OFFLINE_MODEL_ID)
    assert settings.backend == "offline"
    text = settings.describe()
    assert "often wrong" in text and "Los Angeles" in text
    assert settings.server_root == "http://127.0.0.1:8000"


class Stub:
    """A tiny HTTP server on 127.0.0.1 answering health paths with scripted codes."""

    def __init__(self, codes):
        self.codes = codes  # path -> list of status codes (last one repeats)
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seq = stub.codes.get(self.path, [404])
                code = seq.pop(0) if len(seq) > 1 else seq[0]
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def settings(self, model="m"):
        return ConnectionSettings(f"http://127.0.0.1:{self.port}/v1", model)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def make(codes):
        made.append(Stub(codes))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_nim_ready_endpoint(stub):
    assert check_ready(stub({"/v1/health/ready": [200]}).settings()).state == "ready"
    assert check_ready(stub({"/v1/health/ready": [503]}).settings()).state == "loading"


def test_llama_cpp_health_when_nim_endpoint_missing(stub):
    s = stub({"/health": [503]}).settings()
    assert check_ready(s).state == "loading"


def test_unreachable_server():
    from helpers.ports import free_port

    s = ConnectionSettings(f"http://127.0.0.1:{free_port()}/v1", "m")
    assert check_ready(s).state == "unreachable"


def test_wait_until_ready_waits_through_503(stub, capsys):
    s = stub({"/v1/health/ready": [503, 503, 200]}).settings()
    readiness = wait_until_ready(s, timeout_s=10, poll_s=0.01)
    assert readiness.ready
    out = capsys.readouterr().out
    assert "loading the model" in out and "ready" in out


def test_wait_until_ready_gives_up_with_one_paragraph(stub):
    s = stub({"/v1/health/ready": [503]}).settings()
    with pytest.raises(BackendNotReady) as info:
        wait_until_ready(s, timeout_s=0.3, poll_s=0.05, quiet=True)
    message = str(info.value)
    assert "still loading" in message and "\n" not in message


def test_unreachable_offline_server_fails_fast_naming_the_start_command():
    """(A configured NIM that does not listen yet is waited for: see test_nim_readiness.py.)"""
    from helpers.ports import free_port

    s = ConnectionSettings(f"http://127.0.0.1:{free_port()}/v1", OFFLINE_MODEL_ID)
    ticks = iter(range(1000))
    with pytest.raises(BackendNotReady) as info:
        wait_until_ready(s, timeout_s=600, quiet=True, sleep=lambda _: None,
                         clock=lambda: float(next(ticks)))
    assert "make server" in str(info.value)


def test_hosted_without_key_says_so():
    s = ConnectionSettings(HOSTED_BASE_URL, WORKSHOP_MODEL, api_key=None)
    with pytest.raises(BackendNotReady) as info:
        wait_until_ready(s, quiet=True)
    assert "NVIDIA_API_KEY" in str(info.value)


def test_telemetry_switch_in_dotenv_reaches_chatnvidia(tmp_path, monkeypatch):
    """ChatNVIDIA reads NVIDIA_USAGE_TELEMETRY_ENABLED from the process environment: a .env
    line must get there, and a value already in the shell wins."""
    monkeypatch.delenv("NVIDIA_USAGE_TELEMETRY_ENABLED", raising=False)
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("NVIDIA_USAGE_TELEMETRY_ENABLED=0\n")
    load_settings(dotenv=dotenv)
    assert os.environ["NVIDIA_USAGE_TELEMETRY_ENABLED"] == "0"
    monkeypatch.setenv("NVIDIA_USAGE_TELEMETRY_ENABLED", "1")
    load_settings(dotenv=dotenv)
    assert os.environ["NVIDIA_USAGE_TELEMETRY_ENABLED"] == "1"


def test_dotenv_inline_comments_and_quotes_are_read_as_a_person_means_them(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text('export NIM_BASE_URL=http://nim:8000/v1  # the workshop NIM\n'
                      'NIM_MODEL="meta/llama-3.1-8b-instruct"\n')
    settings = load_settings(env={}, dotenv=dotenv)
    assert settings.base_url == "http://nim:8000/v1"
    assert settings.model == "meta/llama-3.1-8b-instruct"


def test_kit_backend_says_which_backend_an_address_is(tmp_path):
    """KIT_BACKEND=hosted: the hosted catalog reached through an address of your own (a gateway,
    or a stand-in for it in tests) takes the hosted catalog's code path; unset, the address and
    the model decide; a value that names no backend is refused with the ones that do."""
    through = {"NIM_BASE_URL": "http://127.0.0.1:9999/v1", "NIM_MODEL": WORKSHOP_MODEL,
               "NVIDIA_API_KEY": "nvapi-secret"}
    assert load_settings(env=through, dotenv=tmp_path / "x").backend == "nim"
    hosted = load_settings(env={**through, "KIT_BACKEND": " Hosted "}, dotenv=tmp_path / "x")
    assert hosted.backend == "hosted" and hosted.base_url == "http://127.0.0.1:9999/v1"
    assert hosted.max_answer_tokens is None and "NVIDIA's hosted API catalog" in hosted.describe()
    assert "declared_backend='hosted'" in repr(hosted) and "nvapi-secret" not in repr(hosted)
    dotenv = tmp_path / ".env"
    dotenv.write_text("KIT_BACKEND=hosted\n")
    assert load_settings(env=through, dotenv=dotenv).backend == "hosted"
    with pytest.raises(KitError, match="KIT_BACKEND='cloud' names no backend: use one of offline"):
        load_settings(env={**through, "KIT_BACKEND": "cloud"}, dotenv=tmp_path / "x")
