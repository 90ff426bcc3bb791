"""The chat panel and the batch progress, without a frontend: their widgets' state after
scripted events (text typed, Send and Stop clicked) against the real offline server, and the
pure logic with fakes."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from helpers import server_activity
from helpers.batch_progress import BatchProgress, BatchRun
from helpers.chat_panel import ChatPanel, Turn
from helpers.grading.faq import FAQ_QUESTIONS
from helpers.server_activity import Reading, server_after_stop
from helpers.server_metrics import read_metrics, requests_in_flight
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings

from notebook_runner import run_notebook

NOWHERE = ConnectionSettings(base_url="http://127.0.0.1:9/v1", model="m")  # no counters there
ESSAY = "Write a long essay about the history of bread."
ONE_SENTENCE = [f"{question} Answer in one sentence." for question in FAQ_QUESTIONS]  # as notebook 2


def wait_until(condition, timeout_s: float = 120.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s:.0f} s"
        time.sleep(0.02)


# ── the chat panel, with a scripted fake model ─────────────────────────────────────────


class PacedModel:
    """A chat model whose stream hands out one piece per `release()`; records what it got."""

    def __init__(self, pieces, fail_after: int | None = None):
        self.pieces = pieces
        self.fail_after = fail_after
        self.sent: list[list] = []
        self.closed = threading.Event()
        self.gate = threading.Semaphore(0)

    def release(self, n: int = 1):
        for _ in range(n):
            self.gate.release()

    def stream(self, messages, **kwargs):
        self.sent.append(list(messages))
        try:
            for i, piece in enumerate(self.pieces):
                assert self.gate.acquire(timeout=30), "the test never released the next piece"
                if i == self.fail_after:
                    raise ConnectionError("connection reset by peer")
                yield piece
        finally:
            self.closed.set()


def test_send_streams_into_the_panel_and_stop_closes_the_stream():
    model = PacedModel(["Bread ", "is ", "old. ", "Very ", "old."])
    panel = ChatPanel(model, NOWHERE, display="none", max_fps=0)
    assert (panel.send_button.disabled, panel.stop_button.disabled) == (False, True)
    panel.prompt.value = "Tell me about bread."
    panel.send_button.click()
    assert panel.busy and panel.prompt.value == ""
    assert (panel.prompt.disabled, panel.send_button.disabled, panel.stop_button.disabled) == (
        True, True, False)
    model.release(2)
    wait_until(lambda: "Bread is" in panel.conversation.value, what="two pieces shown")
    assert "<b>You:</b> Tell me about bread." in panel.conversation.value
    assert re.match(r"first token \d+\.\d\d s · total \d+\.\d\d s · 2 chunks", panel.stats.value)
    assert panel.status.value == "Streaming…"

    panel.stop_button.click()
    assert panel.status.value == "Stopping…" and panel.stop_button.disabled
    model.release()  # the next piece arrives, the panel sees Stop and closes the stream
    turn = panel.wait(timeout_s=30)
    assert model.closed.is_set(), "Stop must close the stream (close() frees the server's slot)"
    assert turn.outcome == "stopped" and turn.result.text == "Bread is old. "
    assert turn.stop_latency_s is not None and turn.stop_latency_s >= 0
    assert "(stopped)" in panel.conversation.value and "Very" not in panel.conversation.value
    assert panel.status.value == "Stopped by you."
    assert (panel.prompt.disabled, panel.send_button.disabled, panel.stop_button.disabled) == (
        False, False, True)
    assert turn.server_stopped is None  # this "server" reports nothing
    assert panel.server.value.startswith("server: does not report")


def test_an_empty_prompt_sends_nothing_and_a_second_turn_remembers_the_first():
    model = PacedModel(["Hi."])
    panel = ChatPanel(model, NOWHERE, display="none")
    panel.prompt.value = "   "
    panel.send_button.click()
    assert panel.status.value == "Type a question first." and not model.sent and not panel.turns
    model.release()
    first = panel.ask("Hello?")
    assert first.outcome == "finished" and first.result.text == "Hi."
    assert panel.status.value.startswith("Answer complete")
    model.release()
    panel.ask("And again?")
    assert model.sent[-1] == [("human", "Hello?"), ("ai", "Hi."), ("human", "And again?")]
    assert len(panel.turns) == 2 and "Turn 2" in panel._bundle()["text/plain"]


def test_a_failing_stream_is_reported_in_one_line_and_the_panel_recovers():
    model = PacedModel(["Half ", "an answer"], fail_after=1)
    panel = ChatPanel(model, NOWHERE, display="none")
    model.release(2)
    turn = panel.ask("Go")
    assert turn.outcome == "failed" and turn.result.text == "Half "
    assert panel.status.value.startswith("Failed: ") and "Traceback" not in panel.status.value
    assert not panel.send_button.disabled and panel.stop_button.disabled
    assert "failed:" in turn.summary()


def scripted_server(monkeypatch, readings):
    """The server's (requests running, tokens generated) readings in order, the last one
    repeating; a clock no real time passes on."""
    readings = list(readings)

    def read_activity(settings, at_s=0.0):
        running, tokens = readings.pop(0) if len(readings) > 1 else readings[0]
        return Reading(at_s, running, tokens)

    monkeypatch.setattr(server_activity, "read_activity", read_activity)
    now = [0.0]
    return {"clock": lambda: now[0], "sleep": lambda s: now.__setitem__(0, now[0] + s)}


def test_after_stop_the_server_must_go_idle_and_its_counter_stand_still(monkeypatch):
    time_ = scripted_server(monkeypatch, [(1, 480), (1, 500), (0, 500)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped and after.tokens_generated == 0 and after.settled_s == pytest.approx(0.1)
    assert after.seconds == pytest.approx(1.5)
    # still running when the watch ends: still generating
    time_ = scripted_server(monkeypatch, [(1, 500), (1, 530)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped is False and after.settled_s is None and after.in_flight == 1
    line = Turn("p", outcome="stopped", after_stop=after).server_line()
    assert line == "server STILL GENERATING: 1 request(s) still running 2.0 s after Stop", line
    # a server that reports no running requests (None) but whose counter grows: not stopped
    time_ = scripted_server(monkeypatch, [(None, 500), (None, 540)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped is False and after.tokens_generated == 40
    time_ = scripted_server(monkeypatch, [(None, 540)])
    assert server_after_stop(NOWHERE, seconds=1.5, **time_).stopped is True
    # one that reports nothing: nothing to say, and no waiting
    time_ = scripted_server(monkeypatch, [(None, None)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped is None and after.seconds == 0


# ── the chat panel on the real server ──────────────────────────────────────────────────


@pytest.fixture
def settings(offline_server):
    return ConnectionSettings(base_url=offline_server.base_url, model=OFFLINE_MODEL_ID)


def test_stop_on_the_real_server_stops_the_server_generating(settings, llm):
    panel = ChatPanel(llm, settings, display="none", max_completion_tokens=300)
    panel.prompt.value = ESSAY
    panel.send_button.click()
    wait_until(lambda: panel.turns[-1].result.content_chunks >= 10 or not panel.busy,
               what="ten chunks of the essay")
    assert panel.busy, f"the essay ended before Stop: {panel.turns[-1].result.text!r}"
    live = panel.stats.value
    assert re.search(r"first token \d+\.\d\d s .* \d+ tok/s", live), live
    assert requests_in_flight(settings) >= 1, "the server should be generating the essay now"
    shown_before_stop = panel.turns[-1].result.content_chunks

    panel.stop_button.click()
    turn = panel.wait(timeout_s=120)
    assert turn.outcome == "stopped", turn.summary()
    assert turn.result.content_chunks <= shown_before_stop + 5, "Stop takes effect at once"
    assert turn.result.finish_reason is None, "the answer was cut, not finished"
    # The server's own counters: no request running, nothing more generated after Stop.
    after = turn.after_stop
    assert after.settled_s is not None and after.in_flight == 0, turn.server_line()
    assert after.tokens_generated == 0, turn.server_line()
    assert requests_in_flight(settings) == 0 and turn.server_stopped is True
    assert turn.tokens_after > turn.tokens_before
    assert turn.tokens_after - turn.tokens_before < 300, "the server did not write the whole answer"
    counter_now = read_metrics(settings).tokens_generated_total
    assert counter_now == turn.tokens_after, "the server went on counting after the watch"
    assert panel.server.value.startswith("server stopped generating: ")
    assert f"counter {turn.tokens_before:.0f} → {turn.tokens_after:.0f}" in panel.server.value
    assert panel.status.value == "Stopped by you." and "(stopped)" in panel.conversation.value
    assert (panel.send_button.disabled, panel.stop_button.disabled) == (False, True)
    print(f"\npanel: {turn.stats_line()} | {turn.server_line()} | "
          f"stop latency {turn.stop_latency_s * 1000:.0f} ms")


# ── batch progress ─────────────────────────────────────────────────────────────────────


class ScriptedBatch:
    """batch_as_completed in a fixed order (answer = the prompt upper-cased)."""

    def __init__(self, order, fail_at: int | None = None):
        self.order = order
        self.fail_at = fail_at

    def batch_as_completed(self, prompts, config=None, *, return_exceptions=False, **kwargs):
        for k, i in enumerate(self.order):
            if k == self.fail_at:
                raise TimeoutError("read timed out")
            yield i, prompts[i].upper()


def test_progress_counts_arrivals_and_lists_the_answers_in_prompt_order():
    out = io.StringIO()
    progress = BatchProgress(["a", "b", "c"], labels=["first", "second", "third"],
                             display="plain", out=out)
    run = progress.run(ScriptedBatch([2, 0, 1]))
    assert run.answers == ["A", "B", "C"] and run.arrival_order == [2, 0, 1] and run.out_of_order
    assert (progress.bar.value, progress.bar.max, progress.count.value) == (3, 3, "3/3")
    assert progress.bar.bar_style == "success"
    arrivals = re.findall(r"Q(\d) after", progress.arrivals.value)
    assert arrivals == ["3", "1", "2"]
    assert re.findall(r"Q(\d): ", progress.in_order.value) == ["1", "2", "3"]
    text = out.getvalue()
    assert text.splitlines()[0].startswith("[ 1/3] Q3 after")
    assert "arrival order: Q3, Q1, Q2" in text and "Q2 second\n      → B" in text


def test_in_order_arrivals_are_said_so_and_a_failure_shows_on_the_bar():
    run = BatchRun(["x", "y"], ["X", "Y"], [0, 1], [0.1, 0.2], 0.2)
    assert not run.out_of_order and "(this time in prompt order)" in run.summary()
    progress = BatchProgress(["a", "b", "c"], display="none")
    with pytest.raises(TimeoutError):
        progress.run(ScriptedBatch([1, 0, 2], fail_at=2))
    assert progress.bar.value == 2 and progress.bar.bar_style == "danger"
    assert progress.count.value.startswith("2/3, then: ")
    with pytest.raises(ValueError, match="2 labels for 3 prompts"):
        BatchProgress(["a", "b", "c"], labels=["x", "y"])


class AnswerOf(BaseCallbackHandler):
    """Keeps the answer of the one call it is attached to (one handler per prompt)."""

    def __init__(self):
        self.text = None

    def on_llm_end(self, response, **kwargs):
        self.text = response.generations[0][0].text


def test_the_faq_answers_arrive_out_of_order_and_land_in_order(llm):
    seen = [AnswerOf() for _ in ONE_SENTENCE]
    progress = BatchProgress(ONE_SENTENCE, labels=FAQ_QUESTIONS, display="none")
    run = progress.run(llm, [{"callbacks": [handler]} for handler in seen], max_completion_tokens=60)
    assert (progress.bar.value, progress.count.value, progress.bar.bar_style) == (10, "10/10", "success")
    assert sorted(run.arrival_order) == list(range(10))
    assert run.arrival_s == sorted(run.arrival_s)
    # answer i is the model's answer to question i, whatever order they came in
    for i, (answer, handler) in enumerate(zip(run.answers, seen, strict=True)):
        assert answer.content == handler.text, f"answer {i} is not question {i}'s"
    assert run.out_of_order, f"ten answers of different lengths arrived in order: {run.arrival_order}"
    shown = [int(n) - 1 for n in re.findall(r"Q(\d+) after", progress.arrivals.value)]
    assert shown == run.arrival_order
    assert [int(n) for n in re.findall(r"Q(\d+): ", progress.in_order.value)] == list(range(1, 11))
    print(f"\narrival order: {', '.join(f'Q{i + 1}' for i in run.arrival_order)}; "
          f"times {[round(t, 1) for t in run.arrival_s]}")


# ── in the lesson ──────────────────────────────────────────────────────────────────────


def tagged(executed, tag: str) -> str:
    cells = [c for c in executed.notebook.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r} in notebook 2"
    return executed.text_of(cells[0])


def test_notebook_2_stops_the_panel_and_shows_the_batch_arrive(offline_server):
    executed = run_notebook("solutions", "02_streaming_and_batching")
    assert executed.error is None, executed.error
    chat = tagged(executed, "chat-panel")
    assert "Model (stopped by you, stream closed" in chat, chat
    assert re.search(r"\[first token \d+\.\d\d s · total \d+\.\d\d s · \d+ chunks · \d+ tok/s", chat), chat
    assert re.search(r"server stopped generating: no request running [\d.]+ s after Stop, "
                     r"then 0 more tokens", chat), chat
    shown = next(c for c in executed.notebook.cells if "panel.show()" in c.source)
    assert "| stopped |" in executed.text_of(shown), "the saved record under the panel shows the turn"

    progress = tagged(executed, "batch-progress")
    arrived = [int(q) for q in re.findall(r"^\[\s*\d+/10\] Q(\d+) after", progress, re.M)]
    assert sorted(arrived) == list(range(1, 11)), progress
    listed = re.search(r"arrival order: (.*)", progress).group(1)
    assert listed == ", ".join(f"Q{q}" for q in arrived)
    assert arrived != sorted(arrived), f"the answers arrived in question order:\n{progress}"
    assert re.findall(r"^  Q(\d+) ", progress, re.M) == [str(q) for q in range(1, 11)]
    assert "10/10 answers in" in progress
