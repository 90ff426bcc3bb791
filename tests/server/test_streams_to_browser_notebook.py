"""Notebook 10 runs top to bottom against the real offline server, and what it teaches holds in
its own measurements: a blocking stream in the event loop makes the other client wait through
the rest of it; the learner's bridge (the exercise's solution) lets both stream at once; a client
that hangs up reaches the blocking producer through it, which closes it (and when the answer is
over before the hang-up, the notebook says there was nothing to cancel); the page is served around
the notebook's reader, at addresses relative to it, and without a browser the notebook says no
page reported. (The page in chromium: tests/browser/test_browser_web_page.py.) Its student copy
runs to the clean-up past the unanswered bridge."""

from __future__ import annotations

import re
import uuid

import nbformat
import pytest

from helpers.ports import port_open

from notebook_runner import assert_nothing_left_behind, execute, register_report, reported, run_notebook
from support import REPO

NAME = "10_streams_to_the_browser"
MARK = "MEASURED "
# Appended to a copy of the notebook: reads the kernel's variables after the lesson ran.
REPORT = f"""
import json


def two(run):
    return {{"second_sent_s": run.second_sent_s, "first_last_token_s": run.first_last_token_s,
            "first_remaining_s": run.first_remaining_s, "second_ttft_s": run.second_ttft_s,
            "second_first_token_s": run.second.ttft_s, "first_text": run.first.text,
            "second_text": run.second.text}}


print({MARK!r} + json.dumps({{
    "stalled": two(stalled), "flowing": two(flowing), "closed": closed, "essay": essay["prompt"],
    "page_status": response.status_code,
    "page_type": response.headers["content-type"], "page_html": response.text,
    "reader": READER_JS, "python_ttft_s": flowing.first.ttft_s, "server_running": server.running,
    "port": server.port,
}}))
"""


register_report(NAME, REPORT)  # the session runs the notebook once, with this cell


@pytest.fixture(scope="module")
def executed(offline_server):
    return run_notebook("solutions", NAME)


@pytest.fixture(scope="module")
def measured(executed):
    return reported(executed, MARK)


def test_runs_clean_with_the_two_timelines_as_an_image(executed, capsys):
    with capsys.disabled():
        print(f"\n⏱ solutions/{NAME}.ipynb executed in {executed.seconds:.1f} s")
    assert executed.error is None, f"{NAME} failed: {executed.error}"
    assert not executed.cells_with_errors()
    text = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    assert "Backend: the offline llama.cpp server" in text and "often wrong" in text
    chart = next(c for c in executed.notebook.cells if "bridged" in c.metadata.get("tags", []))
    assert any("image/png" in o.get("data", {}) for o in chart.outputs), "no PNG chart saved"


def test_a_blocking_stream_makes_the_other_client_wait_through_the_rest_of_it(measured, capsys):
    stalled, flowing = measured["stalled"], measured["flowing"]
    with capsys.disabled():
        for name, run in (("without the bridge", stalled), ("with the learner's bridge", flowing)):
            print(f"  {name:<22} B asked at {run['second_sent_s']:.2f} s, A still had "
                  f"{run['first_remaining_s']:.2f} s to go; "
                  f"B's first token after {run['second_ttft_s']:.2f} s")
    assert stalled["first_text"] and stalled["second_text"], "both clients got their answers"
    assert stalled["first_remaining_s"] > 0.3, "B asked while A's blocking stream still had a while to run"
    # the claim: B's wait is at least the rest of the blocking call, and its text begins after A's ends
    assert stalled["second_ttft_s"] >= stalled["first_remaining_s"], stalled
    assert stalled["second_first_token_s"] >= stalled["first_last_token_s"], stalled


def test_the_bridge_lets_both_clients_stream_at_once(measured):
    stalled, run = measured["stalled"], measured["flowing"]
    assert run["first_text"] and run["second_text"]
    assert run["second_first_token_s"] < run["first_last_token_s"], f"B began before A ended: {run}"
    assert run["second_ttft_s"] < stalled["second_ttft_s"] / 2, (run, stalled)


def test_a_client_that_hangs_up_stops_the_blocking_producer(executed, measured):
    assert measured["closed"] == [measured["essay"]], "the bridge closed the model stream of the hang-up only"
    said = outcome(executed.tagged_text("hang-up"))  # the sentence its own record supports
    took = re.match(r"The hang-up reached the producer (\d+\.\d+) s after the client left: your "
                    r"bridge's thread closed llm\.stream mid-answer", said)
    assert took and float(took.group(1)) < 5, said
    # the model server's own counters just after: its work for the hung-up client stopped
    watch = re.search(r"^the model server after the hang-up: \d+ tokens generated in \d+\.\d s, "
                      r"(\d+) request\(s\) running at the end → (still generating|idle)$",
                      executed.tagged_text("hang-up"), re.M)
    assert watch and watch.groups() == ("0", "idle"), executed.tagged_text("hang-up")


def outcome(text: str) -> str:
    """The hang-up's one-sentence outcome, as the notebook prints it (after an arrow)."""
    found = re.search(r"^→ (.+)$", text, re.M)
    assert found, f"no outcome line in:\n{text}"
    return found.group(1)


def test_it_says_so_when_the_answer_ends_before_the_hang_up(offline_server):
    """As on a GPU, where an answer can be over before the client hangs up: a cap of 2 tokens
    (through the settings, as autograding caps answers) ends the answer before the client has
    read its six lines, so there is nothing to cancel, and the notebook must say so instead of
    claiming a cancellation. Runs the cells the hang-up needs, then the clean-up."""
    notebook = nbformat.read(REPO / "solutions" / f"{NAME}.ipynb", as_version=4)

    def needed(cell):
        tags, grade_id = cell.metadata.get("tags", []), cell.metadata.get("nbgrader", {}).get("grade_id")
        return bool({"setup", "app", "bridged", "blocking", "hang-up", "server-stop"} & set(tags)) or (
            grade_id == "in_thread")

    notebook.cells = [c for c in notebook.cells if needed(c)]
    assert len(notebook.cells) == 7
    marker = f"kit-run-{uuid.uuid4().hex}"
    executed = execute(notebook, timeout_s=300, workdir=REPO / "solutions",
                       env={"KIT_ANSWER_CAP": "2", "KIT_DISPLAY": "plain", "KIT_RUN_MARKER": marker})
    assert executed.error is None, executed.error
    text = executed.tagged_text("hang-up")
    assert re.search(r"asking for up to \d+ tokens, capped at 2$", text, re.M), text
    assert outcome(text) == "Nothing to cancel: the answer was complete before the client hung up", text
    assert "reached the producer" not in text
    assert "server thread alive: False" in executed.tagged_text("server-stop")
    assert_nothing_left_behind(marker)


def test_the_app_serves_the_page_and_the_stream_it_reads(executed, measured):
    assert measured["page_status"] == 200 and measured["page_type"].startswith("text/html")
    assert 'const STREAM_URL = "bridged"' in measured["page_html"], "relative: direct and proxied alike"
    page_cell = executed.tagged_text("page")
    assert re.search(r"^Open the page: http://127\.0\.0\.1:\d+/$", page_cell, re.M), (
        "outside a Jupyter server there is no proxied address to offer")
    reports = executed.tagged_text("page-reports")
    assert "No page has reported: no browser showed the frame." in reports, reports
    assert ("answers your bridge closed before their end (the hang-up above; Stop on the direct link): "
            f"{[measured['essay']]}") in reports
    assert measured["reader"].strip() in measured["page_html"], "the page runs the notebook's reader"
    assert measured["python_ttft_s"] > 0
    assert measured["server_running"] is False, "the clean-up stopped the server"
    assert not port_open(measured["port"]), "and freed its port"


def test_student_copy_runs_to_the_clean_up_past_the_unanswered_bridge(offline_server):
    executed = run_notebook("notebooks", NAME)
    cells = executed.notebook.cells
    failing = executed.cells_with_errors()
    assert failing, "an unanswered exercise must fail"
    for cell in failing:
        assert "raises-exception" in cell.metadata.get("tags", []), (
            f"cell {cells.index(cell)} failed and Run All would stop there: {cell.source[:80]}")
    errors = [o for c in failing for o in c.outputs if o.output_type == "error"]
    assert any(e.ename == "NotImplementedError" for e in errors), "the exercise stub is what fails"
    stop = next(c for c in cells if "server-stop" in c.metadata.get("tags", []))
    assert "server thread alive: False" in executed.text_of(stop), "the clean-up ran and stopped the server"
