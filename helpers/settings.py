"""Where the LLM lives: base URL, model and key, resolved from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values

from .friendly_errors import KitError
from .ports import port_open

WORKSHOP_BASE_URL = "http://llama:8000/v1"
WORKSHOP_MODEL = "meta/llama-3.1-8b-instruct"
HOSTED_BASE_URL = "https://integrate.api.nvidia.com/v1"
OFFLINE_MODEL_ID = "smollm2-135m-instruct"
OFFLINE_PORT = 8000  # where `make server` / `llm-kit server start` listen by default
OFFLINE_BASE_URL = f"http://127.0.0.1:{OFFLINE_PORT}/v1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
BACKENDS = ("offline", "hosted", "nim")
# Read by ChatNVIDIA itself: the key, and whether it sends usage telemetry to NVIDIA when it
# talks to the hosted catalog (langchain-nvidia-ai-endpoints 1.5+ does by default; 0 turns it off).
EXPORTED_FROM_DOTENV = ("NVIDIA_API_KEY", "NVIDIA_USAGE_TELEMETRY_ENABLED")
# tokens per answer on the offline model; autograding sets a lower KIT_ANSWER_CAP (no test
# depends on an answer's length)
OFFLINE_ANSWER_CAP = int(os.environ.get("KIT_ANSWER_CAP") or 200)
# tokens per answer in notebook 9's load runs: short on the offline CPU model, so that its sweep
# finishes in seconds (KIT_LOAD_TEST_ANSWER_TOKENS changes it); elsewhere a chat-sized answer
OFFLINE_LOAD_TEST_ANSWER_TOKENS = int(os.environ.get("KIT_LOAD_TEST_ANSWER_TOKENS") or 20)
LOAD_TEST_ANSWER_TOKENS = 128
# how many times longer notebook 9's prefill and prefix-cache prompts are than on the offline
# model: there they are short (the longest ~300 tokens), since a CPU reads a prompt slowly and each
# llama.cpp slot holds 2,048 tokens; a GPU reads a few hundred tokens in milliseconds, inside the
# jitter of TTFT, so elsewhere they are 8 times longer (the longest ~2,000-2,500 tokens, within the
# 8,192 tokens the kit's docker-compose.yml gives a NIM)
OFFLINE_PROMPT_SCALE = 1
PROMPT_SCALE = 8
# KIT_PROMPT_SCALE, where set, is the scale on every backend: smaller for a NIM given a shorter
# NIM_MAX_MODEL_LEN, or where a stand-in for the hosted catalog is the offline server
PROMPT_SCALE_OVERRIDE = int(os.environ.get("KIT_PROMPT_SCALE") or 0) or None

OFFLINE_CAVEAT = (
    "You are on the offline model: SmolLM2-135M-Instruct, a tiny model running on your CPU. "
    "It is fast and good for learning how streaming and batching behave, but it is often wrong "
    "on facts (it may tell you Los Angeles is the capital of California). Judge the timings, "
    "not the answers."
)


@dataclass(frozen=True)
class ConnectionSettings:
    """The three things a notebook needs to reach an LLM."""

    base_url: str
    model: str
    api_key: str | None = None
    # KIT_BACKEND: which backend this is where its address cannot tell, e.g. the hosted catalog
    # reached through a gateway or proxy of your own; None: told by the model and the address.
    declared_backend: str | None = None

    def __post_init__(self):
        if self.declared_backend is not None and self.declared_backend not in BACKENDS:
            raise KitError(f"KIT_BACKEND={self.declared_backend!r} names no backend: use one of "
                           f"{', '.join(BACKENDS)}, or leave it unset.")

    @property
    def backend(self) -> str:
        """'offline', 'hosted' or 'nim' (a NIM you run yourself, e.g. via docker compose);
        KIT_BACKEND, where set, says which."""
        if self.declared_backend:
            return self.declared_backend
        if self.model == OFFLINE_MODEL_ID:
            return "offline"
        if urlparse(self.base_url).hostname == urlparse(HOSTED_BASE_URL).hostname:
            return "hosted"
        return "nim"

    @property
    def max_answer_tokens(self) -> int | None:
        """The answer cap the notebooks pass as `max_completion_tokens`: a concession to the
        offline model on a laptop CPU (cells finish in seconds); None on a NIM or the hosted
        catalog, where answers arrive whole."""
        return OFFLINE_ANSWER_CAP if self.backend == "offline" else None

    @property
    def load_test_answer_tokens(self) -> int:
        """How long each answer of a load test is (notebook 9 passes it as
        `max_completion_tokens`): short on the offline model, a concession to a laptop CPU;
        a chat-sized answer on a NIM or the hosted catalog, where decode is what a load test
        measures."""
        return OFFLINE_LOAD_TEST_ANSWER_TOKENS if self.backend == "offline" else LOAD_TEST_ANSWER_TOKENS

    @property
    def prompt_scale(self) -> int:
        """How many times longer the prompts of notebook 9's prefill and prefix-cache sections
        are than the offline model's: 1 there (short prompts, a concession to a laptop CPU), 8 on
        a NIM or the hosted catalog, where a GPU reads short prompts too fast for TTFT to show it;
        KIT_PROMPT_SCALE, where set, on every backend."""
        if PROMPT_SCALE_OVERRIDE:
            return PROMPT_SCALE_OVERRIDE
        return OFFLINE_PROMPT_SCALE if self.backend == "offline" else PROMPT_SCALE

    @property
    def server_root(self) -> str:
        """The base URL without its trailing /v1 (where health endpoints live)."""
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def describe(self) -> str:
        """One paragraph saying which backend this is (and the offline model's caveat)."""
        host = urlparse(self.base_url).hostname or ""
        where = "on this machine" if host in LOOPBACK_NAMES else f"at {host}"
        names = {
            "offline": f"the offline llama.cpp server (SmolLM2-135M on a CPU) {where}",
            "hosted": "NVIDIA's hosted API catalog",
            "nim": "a NIM (Llama 3.1 8B Instruct, OpenAI-compatible)",
        }
        text = f"Backend: {names[self.backend]}\n  base_url = {self.base_url}\n  model    = {self.model}"
        if self.backend == "hosted":
            text += f"\n  api key  = {'set' if self.api_key else 'MISSING'}"
        if self.backend == "offline":
            text += "\n\n" + OFFLINE_CAVEAT
        return text

    def __repr__(self) -> str:  # never print the key
        key = "set" if self.api_key else None
        declared = f", declared_backend={self.declared_backend!r}" if self.declared_backend else ""
        return (f"ConnectionSettings(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key={key}{declared})")


def read_dotenv(path: Path) -> dict[str, str]:
    """The KEY=VALUE pairs of a .env file, parsed by python-dotenv (comments, quotes, inline
    comments, `export` prefixes); empty when there is no such file."""
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def find_dotenv(start: Path | None = None) -> Path | None:
    """The nearest .env in the start folder or its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def load_settings(env: dict[str, str] | None = None, dotenv: Path | None = None) -> ConnectionSettings:
    """Resolve settings: environment first, then a .env file, then the defaults.

    With no NIM_BASE_URL but an NVIDIA_API_KEY, the hosted catalog is used. With neither, the
    offline server on this machine when it is running (`make server`), else the workshop NIM.
    KIT_BACKEND (offline, hosted or nim) says which backend NIM_BASE_URL is where its address
    cannot tell: the hosted catalog through a gateway of your own, or a stand-in for it in tests.
    Called without `env`, it also applies `export_dotenv` (ChatNVIDIA reads the process).
    """
    environ = os.environ if env is None else env
    path = dotenv if dotenv is not None else find_dotenv()
    file_values = read_dotenv(path) if path else {}

    def get(name: str) -> str | None:
        return environ.get(name) or file_values.get(name) or None

    api_key = get("NVIDIA_API_KEY")
    base_url = get("NIM_BASE_URL")
    default_model = WORKSHOP_MODEL
    if base_url is None and api_key:
        base_url = HOSTED_BASE_URL
    elif base_url is None:
        base_url = WORKSHOP_BASE_URL
        if env is None and port_open(OFFLINE_PORT):  # a real process, not a test's env
            base_url, default_model = OFFLINE_BASE_URL, OFFLINE_MODEL_ID
    model = get("NIM_MODEL") or default_model
    declared = (get("KIT_BACKEND") or "").strip().lower() or None
    if env is None:  # a real process: ChatNVIDIA reads the key and telemetry switch from it
        export_dotenv(path)
    return ConnectionSettings(base_url=base_url.rstrip("/"), model=model, api_key=api_key,
                              declared_backend=declared)


def export_dotenv(dotenv: Path | None = None) -> dict[str, str]:
    """Copy what ChatNVIDIA reads from the process environment (the key, the telemetry switch)
    from .env into os.environ, where the shell left it unset; returns what it copied. Every
    model the kit builds goes through this (see `chat_model`), so .env counts the same way
    everywhere."""
    path = dotenv if dotenv is not None else find_dotenv()
    values = read_dotenv(path) if path else {}
    copied = {name: values[name] for name in EXPORTED_FROM_DOTENV
              if values.get(name) and not os.environ.get(name)}
    os.environ.update(copied)
    return copied


def chat_model(settings: ConnectionSettings, **fields):
    """`ChatNVIDIA` for these settings, with .env's key and telemetry switch applied first.
    `fields` go to the constructor (temperature, max_completion_tokens, timeout, ...)."""
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    export_dotenv()
    key = {"api_key": settings.api_key} if settings.api_key else {}
    return ChatNVIDIA(base_url=settings.base_url, model=settings.model, **key, **fields)
