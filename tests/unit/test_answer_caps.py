"""Answer caps fit the backend: the offline CPU model is capped, a NIM and the hosted catalog get
whole answers, and the notebooks take the cap from the settings (never a number of their own).
Load tests (notebook 9) send short answers offline only, chat-sized ones elsewhere; its prefill and
prefix-cache prompts are short offline only, 8 times longer elsewhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from langchain_nvidia_ai_endpoints import ChatNVIDIA

from helpers.settings import (
    HOSTED_BASE_URL,
    LOAD_TEST_ANSWER_TOKENS,
    OFFLINE_ANSWER_CAP,
    OFFLINE_LOAD_TEST_ANSWER_TOKENS,
    OFFLINE_MODEL_ID,
    OFFLINE_PROMPT_SCALE,
    PROMPT_SCALE,
    WORKSHOP_BASE_URL,
    WORKSHOP_MODEL,
    ConnectionSettings,
)

from support import REPO

NIM = ConnectionSettings(base_url=WORKSHOP_BASE_URL, model=WORKSHOP_MODEL)
HOSTED = ConnectionSettings(base_url=HOSTED_BASE_URL, model=WORKSHOP_MODEL, api_key="nvapi-test")
OFFLINE = ConnectionSettings(base_url="http://127.0.0.1:8000/v1", model=OFFLINE_MODEL_ID)
# The longest answers the lessons ask for: "roughly 500 words" (English runs ~1.3 tokens a word).
LONGEST_ANSWER_TOKENS = int(500 * 1.3 * 1.5)  # with half again as margin
LESSONS = sorted((REPO / "solutions").glob("0[1-6]_*.ipynb"))


def payload_cap(settings: ConnectionSettings) -> int | None:
    """The token cap ChatNVIDIA sends when a notebook builds its model from these settings."""
    llm = ChatNVIDIA(base_url=settings.base_url, model=settings.model, temperature=0,
                     max_completion_tokens=settings.max_answer_tokens,
                     api_key=settings.api_key or "unused")
    return llm._get_payload([{"role": "user", "content": "hi"}], stop=None).get("max_tokens")


@pytest.mark.filterwarnings("ignore::UserWarning")  # ChatNVIDIA warns about unlisted models
@pytest.mark.parametrize("settings", [NIM, HOSTED], ids=["nim", "hosted"])
def test_no_cap_of_ours_where_answers_must_arrive_whole(settings):
    assert settings.max_answer_tokens is None
    # ChatNVIDIA then sends only its own default limit, which a 500-word answer fits in,
    # so it ends with finish_reason "stop".
    assert payload_cap(settings) >= LONGEST_ANSWER_TOKENS


def test_the_offline_cpu_model_keeps_its_cap():
    assert OFFLINE.max_answer_tokens == OFFLINE_ANSWER_CAP
    assert payload_cap(OFFLINE) == OFFLINE_ANSWER_CAP


def _code(path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_notebooks_take_the_cap_from_the_settings(path):
    source = "\n".join(_code(path))
    assert not re.search(rf"\b{OFFLINE_ANSWER_CAP}\b", source), (
        f"{path.name} hard-codes {OFFLINE_ANSWER_CAP}: use settings.max_answer_tokens")
    models = re.findall(r"^llm = ChatNVIDIA\((.*?)\)$", source, re.M | re.S)
    assert models or "ChatNVIDIA(" not in source, f"{path.name} builds no `llm`"
    assert all("max_completion_tokens=settings.max_answer_tokens" in m for m in models), (
        f"{path.name}: pass max_completion_tokens=settings.max_answer_tokens visibly")


def test_load_test_answers_are_short_only_on_the_offline_model():
    assert OFFLINE.load_test_answer_tokens == OFFLINE_LOAD_TEST_ANSWER_TOKENS
    if not os.environ.get("KIT_LOAD_TEST_ANSWER_TOKENS"):
        assert OFFLINE_LOAD_TEST_ANSWER_TOKENS == 20, "a sweep on a CPU must finish in seconds"
    for settings in (NIM, HOSTED):
        assert settings.load_test_answer_tokens == LOAD_TEST_ANSWER_TOKENS == 128
    # what counts is the backend, not the model's name: KIT_BACKEND=nim gets chat-sized answers
    declared = ConnectionSettings(base_url=OFFLINE.base_url, model=OFFLINE_MODEL_ID, declared_backend="nim")
    assert declared.load_test_answer_tokens == LOAD_TEST_ANSWER_TOKENS


def settings_in_a_fresh_process(attribute: str, backends: list[str], **env: str) -> list[str]:
    """`attribute` of the settings of each backend (as KIT_BACKEND names it), read in a new Python
    with `env` set: the settings read their environment once, at import."""
    code = ("import sys\nfrom helpers.settings import ConnectionSettings, OFFLINE_MODEL_ID\n"
            "print(*(getattr(ConnectionSettings(base_url='http://127.0.0.1:8000/v1', model=OFFLINE_MODEL_ID, "
            f"declared_backend=name), {attribute!r}) for name in sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *backends], cwd=REPO, env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return out.split()


def test_the_offline_load_test_length_is_overridable_like_the_answer_cap():
    assert settings_in_a_fresh_process("load_test_answer_tokens", ["offline"],
                                       KIT_LOAD_TEST_ANSWER_TOKENS="7") == ["7"]


def test_notebook_9_takes_its_load_test_length_from_the_settings():
    source = "\n".join(_code(REPO / "solutions" / "09_latency_and_throughput.ipynb"))
    assert "ANSWER_TOKENS = settings.load_test_answer_tokens" in source
    assert not re.search(rf"ANSWER_TOKENS = {OFFLINE_LOAD_TEST_ANSWER_TOKENS}\b", source)


@pytest.mark.skipif(bool(os.environ.get("KIT_PROMPT_SCALE")), reason="KIT_PROMPT_SCALE sets the scale")
def test_prompts_are_short_only_on_the_offline_model():
    """Offline, notebook 9's prompts stay as short as a laptop CPU reads in a moment; on a NIM or
    the hosted catalog they are 8 times longer, so that a GPU's prefill shows in TTFT."""
    assert OFFLINE.prompt_scale == OFFLINE_PROMPT_SCALE == 1
    for settings in (NIM, HOSTED):
        assert settings.prompt_scale == PROMPT_SCALE == 8
    declared = ConnectionSettings(base_url=OFFLINE.base_url, model=OFFLINE_MODEL_ID, declared_backend="nim")
    assert declared.prompt_scale == PROMPT_SCALE, "what counts is the backend, not the model's name"
    gateway = ConnectionSettings(base_url=OFFLINE.base_url, model=WORKSHOP_MODEL, declared_backend="hosted")
    assert gateway.prompt_scale == PROMPT_SCALE


def test_the_prompt_scale_is_overridable_on_every_backend():
    """KIT_PROMPT_SCALE: smaller for a NIM given a shorter NIM_MAX_MODEL_LEN, or a stand-in."""
    assert settings_in_a_fresh_process("prompt_scale", ["offline", "nim", "hosted"],
                                       KIT_PROMPT_SCALE="3") == ["3", "3", "3"]


def test_notebook_9_scales_its_prompts_by_the_settings():
    source = "\n".join(_code(REPO / "solutions" / "09_latency_and_throughput.ipynb"))
    assert "PROMPT_SCALE = settings.prompt_scale" in source
    # both sections use it: the prefill's note and the prefix cache's system prompt
    assert len(re.findall(r"\* PROMPT_SCALE\b", source)) >= 2, "sections 3 and 4 scale their prompts"
