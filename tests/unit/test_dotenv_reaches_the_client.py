"""What ChatNVIDIA reads from the process environment (the key, the telemetry switch) comes from
.env the same way wherever the kit builds a model: notebooks (load_settings), the pre-flight and
`make workshop` (configured_backend), and `chat_model`."""

from __future__ import annotations

import os

import pytest

from helpers.settings import chat_model, export_dotenv, load_settings
from llm_kit.backend import configured_backend
from llm_kit.preflight.checks import notebook_llm

NAMES = ("NVIDIA_API_KEY", "NVIDIA_USAGE_TELEMETRY_ENABLED", "NIM_BASE_URL", "NIM_MODEL")
KEY = "key-from-dotenv-only"


@pytest.fixture
def dotenv(monkeypatch, tmp_path):
    """A .env with a NIM, a key and telemetry off, in the working folder; none of it in the shell."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(f"NIM_BASE_URL=http://gpu-box:8000/v1\nNVIDIA_API_KEY={KEY}\n"
                                   "NVIDIA_USAGE_TELEMETRY_ENABLED=0\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".env"


def test_export_copies_what_the_client_reads_and_the_shell_wins(dotenv, monkeypatch):
    monkeypatch.setenv("NVIDIA_USAGE_TELEMETRY_ENABLED", "1")
    assert export_dotenv() == {"NVIDIA_API_KEY": KEY}
    assert os.environ["NVIDIA_API_KEY"] == KEY
    assert os.environ["NVIDIA_USAGE_TELEMETRY_ENABLED"] == "1", "the shell's setting wins"
    assert "NIM_BASE_URL" not in os.environ, "settings are read from .env, not exported"


@pytest.mark.parametrize("entry", ["configured_backend", "load_settings"])
def test_every_way_in_exports_it(dotenv, entry):
    settings = configured_backend() if entry == "configured_backend" else load_settings()
    assert settings.base_url == "http://gpu-box:8000/v1" and settings.api_key == KEY
    assert os.environ["NVIDIA_API_KEY"] == KEY
    assert os.environ["NVIDIA_USAGE_TELEMETRY_ENABLED"] == "0"


def test_models_the_kit_builds_carry_the_key_and_send_no_telemetry(dotenv):
    settings = configured_backend(env=dict(os.environ))  # settings only: nothing exported yet
    assert "NVIDIA_API_KEY" not in os.environ
    for llm in (chat_model(settings), notebook_llm(settings)):
        assert llm._client.api_key.get_secret_value() == KEY
        assert llm._client.usage_telemetry_enabled is False
