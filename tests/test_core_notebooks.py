"""What notebooks 1-3 measure, asserted from their run against the real offline server
(tests/test_notebooks.py checks that every notebook runs clean)."""

from __future__ import annotations

import re

from helpers.settings import OFFLINE_ANSWER_CAP
from llm_kit.offline.config import DEFAULT_PARALLEL

from notebook_runner import number, run_notebook


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def executed_solution(name):
    return run_notebook("solutions", name)


def test_streaming_notebook_saves_the_long_answer_and_charts(offline_server):
    executed = executed_solution("02_streaming_and_batching")
    cell = next(c for c in executed.notebook.cells
                if "stream_print(llm.stream(long_prompt)" in _source(c))
    assert executed.text_of(cell).count(" ") > 50, "the long answer is in the saved output"
    figures = [c for c in executed.notebook.cells if c.cell_type == "code"
               and any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert len(figures) >= 2, "the timeline and comparison charts are saved as images"


def test_streaming_notebook_measures_stream_against_invoke(offline_server):
    text = executed_solution("02_streaming_and_batching").tagged_text("stream-vs-invoke")
    invoke_s = number(r"invoke: whole answer after (\d+\.\d+) s", text)
    first_s = number(r"stream: first token after (\d+\.\d+) s", text)
    last_s = number(r"last after (\d+\.\d+) s", text)
    assert 0.5 <= invoke_s / last_s <= 2.0, f"the whole answer took about as long either way:\n{text}"
    assert first_s <= last_s / 5, text


def test_streaming_notebook_reports_the_limits_on_requests_in_flight(offline_server):
    text = executed_solution("02_streaming_and_batching").tagged_text("concurrency-limits")
    limits = rf"default thread pool here: \d+ threads; server slots: {DEFAULT_PARALLEL}$"
    assert re.search(limits, text.strip()), text


def test_streaming_notebook_keeps_the_answers_a_rate_limit_spared(offline_server):
    text = executed_solution("02_streaming_and_batching").tagged_text("batch-exceptions")
    assert "2 of 6 failed (2 answered 429 by the proxy)" in text
    assert text.count("✗ failed") == 2 and text.count("✔ ") == 4
    assert "rate-limiting you (HTTP 429" in text


def test_first_notebook_takes_the_cap_from_the_settings(offline_server):
    text = executed_solution("01_setup_and_first_call").tagged_text("model-setup")
    assert f"answer cap: {OFFLINE_ANSWER_CAP} tokens" in text


def test_anatomy_notebook_compares_like_with_like(offline_server):
    text = executed_solution("03_anatomy_of_a_stream").tagged_text("time-saved")
    assert number(r"the reader starts (\d+)x sooner", text) >= 3, text
    assert 0.5 <= number(r"the whole answer takes (\d+\.\d+)x as long streamed", text) <= 2.0, text
