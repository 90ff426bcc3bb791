"""The pre-flight rows for what the lessons rely on (structured output, cached tokens, Stop seen by
the server), decided from what the calls returned; and the warning result they may give."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llm_kit.preflight.lessons import (
    SCHEMA_KEY,
    STOP_AFTER_CHUNKS,
    SchemaAnswer,
    cache_verdict,
    read_schema_answer,
    schema_verdict,
    stop_verdict,
)
from llm_kit.preflight.table import FAIL, PASS, SKIP, WARN, YELLOW, failed, passed, render, summary, warned

CITY = SchemaAnswer(value="Austin")
FREE_TEXT = SchemaAnswer(problem="free text: 'The capital of Texas is Austin.'")


@pytest.mark.parametrize("text, value", [
    (f'{{"{SCHEMA_KEY}": "Austin"}}', "Austin"),
    (f'\n  {{\n "{SCHEMA_KEY}" : "Baton Rouge"}}  ', "Baton Rouge"),
    ("The capital of Texas is Austin.", None),
    ('{"city": "Austin"}', None),  # the server's own key, not the schema's
    (f'{{"{SCHEMA_KEY}": ""}}', None),
    (f'{{"{SCHEMA_KEY}": "Aus', None),  # cut off
    ('["Austin"]', None),
])
def test_an_answer_follows_the_schema_only_with_the_schemas_key(text, value):
    answer = read_schema_answer(text)
    assert answer.value == value and answer.followed == (value is not None)
    assert answer.followed or answer.problem


@pytest.mark.parametrize("openai_style, nvext, result, advice", [
    (CITY, None, PASS, ""),
    (FREE_TEXT, CITY, WARN, "nvext={'guided_json': schema}"),  # NIM 1.x ignoring response_format
    (SchemaAnswer(problem="rejected (Exception: [400] Bad Request)"), CITY, WARN, "guided_json"),
    (FREE_TEXT, FREE_TEXT, FAIL, "does not apply a JSON schema"),
])
def test_the_structured_row(openai_style, nvext, result, advice):
    check = schema_verdict(openai_style, nvext)
    assert (check.name, check.result) == ("structured", result)
    assert advice in check.fix
    assert "response_format json_schema →" in check.measured
    assert ("nvext.guided_json →" in check.measured) == (nvext is not None)


@pytest.mark.parametrize("first, repeat, prompt_tokens, result, text", [
    (24, 262, 263, PASS, "repeat: 262 of 263 prompt tokens cached (first: 24)"),
    (0, 256, 263, PASS, "256 of 263"),       # a block-sized cache (vLLM, TensorRT-LLM)
    (0, 0, 263, WARN, "NIM_ENABLE_KV_CACHE_REUSE=1"),  # reported, not reused
    (None, None, 263, WARN, "not reported"),  # no prompt_tokens_details at all
])
def test_the_cached_tokens_row_warns_but_never_fails(first, repeat, prompt_tokens, result, text):
    check = cache_verdict(first, repeat, prompt_tokens)
    assert (check.name, check.result) == ("cached tokens", result)
    assert text in check.measured + " " + check.fix
    assert not check.failed


def after(stopped, tokens=None, seconds=1.5, caveat=None):
    """What `server_after_stop` reports, as far as the row reads it."""
    return SimpleNamespace(stopped=stopped, tokens_generated=tokens, seconds=seconds, caveat=caveat)


@pytest.mark.parametrize("read, seen, result, text", [
    (STOP_AFTER_CHUNKS, after(True, 0.0), PASS, "the server stopped: +0 tokens in a 1.5 s watch"),
    (STOP_AFTER_CHUNKS, after(False, 120.0), FAIL, "went on: +120 tokens"),
    (STOP_AFTER_CHUNKS, after(None), SKIP, "does not report"),
    (STOP_AFTER_CHUNKS, after(None, 40.0, caveat="other requests ran too"), WARN,
     "no verdict: other requests ran too"),
    (1, after(True, 0.0), FAIL, "ended after 1 chunks, before Stop"),
])
def test_the_stop_row(read, seen, result, text):
    check = stop_verdict(read, seen)
    assert (check.name, check.result) == ("Stop seen", result)
    assert text in check.measured
    assert (result in (FAIL, WARN)) == bool(check.fix)


def test_a_warning_is_yellow_on_a_terminal_and_named_in_the_summary_but_not_a_failure():
    checks = [passed("invoke", "ok"), warned("cached tokens", "not reported", "see the lessons")]
    assert not any(check.failed for check in checks)
    assert render(checks, color=True).splitlines()[-1].startswith(YELLOW)
    assert summary(checks, 2.0) == "All 2 checks passed, 1 with a warning (cached tokens); 2.0 s."
    checks.append(failed("structured", "free text", "fix it"))
    assert summary(checks, 2.0).startswith("FAILED: 1 of 3 checks (structured), 1 with a warning")
