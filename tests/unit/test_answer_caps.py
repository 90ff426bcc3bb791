"""Answer caps fit the backend: the offline CPU model is capped, a NIM and the hosted catalog get
whole answers, and the notebooks take the cap from the settings (never a number of their own)."""

from __future__ import annotations

import json
import re

import pytest
from langchain_nvidia_ai_endpoints import ChatNVIDIA

from helpers.settings import (
    HOSTED_BASE_URL,
    OFFLINE_ANSWER_CAP,
    OFFLINE_MODEL_ID,
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
