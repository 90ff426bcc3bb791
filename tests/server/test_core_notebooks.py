"""What notebooks 1-3 measure, asserted from their run against the real offline server
(tests/test_notebooks.py checks that every notebook runs clean)."""

from __future__ import annotations

import re

from helpers.settings import OFFLINE_ANSWER_CAP

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


def test_streaming_notebook_batches_in_order_each_request_its_own_conversation(offline_server):
    text = executed_solution("02_streaming_and_batching").tagged_text("batch-order")
    rows = re.findall(r"^What is the capital of ([\w ]+?)\? +→ (.*)  \[(\d+) prompt tokens\]$", text, re.M)
    states = ["California", "Texas", "New York", "Florida", "Illinois", "Ohio"]
    assert [state for state, _, _ in rows] == states, f"six answers, in question order:\n{text}"
    assert all(answer.strip() for _, answer, _ in rows), text
    read = [int(tokens) for _, _, tokens in rows]
    # one question per request: the counts stay flat (a shared conversation would grow them)
    assert max(read) - min(read) <= 3, f"prompt tokens per request: {read}"


def test_first_notebook_takes_the_cap_from_the_settings(offline_server):
    text = executed_solution("01_setup_and_first_call").tagged_text("model-setup")
    assert f"answer cap: {OFFLINE_ANSWER_CAP} tokens" in text


def test_anatomy_notebook_shows_the_wire_event_by_event(offline_server):
    text = executed_solution("03_anatomy_of_a_stream").tagged_text("sse-wire")
    assert "content-type: text/event-stream" in text, text
    lines = [m.group(2) for m in re.finditer(r"^(['\"])(.*)\1$", text, re.M)]
    events = [line for line in lines if line.startswith("data:")]
    assert len(events) >= 3 and events[-1] == "data: [DONE]", text
    # each event is a data line and the blank line that ends it
    followers = zip(lines, lines[1:], strict=False)
    assert all(after == "" for line, after in followers if line.startswith("data:")), text
    found = re.search(r"^(\d+) lines: (\d+) events, each a `data:` line and a blank line; "
                      r"the last event: 'data: \[DONE\]'$", text, re.M)
    assert found and int(found.group(1)) >= len(lines) and int(found.group(2)) >= len(events), text
