"""The chat panel and the batch progress, without a frontend: their widgets' state after
scripted events (text typed, Send and Stop clicked) with fake models and a scripted server."""

from __future__ import annotations

import io
import re
import threading

import pytest

from helpers import server_activity
from helpers.batch_progress import BatchProgress, BatchRun
from helpers.chat_panel import ChatPanel, Turn
from helpers.server_activity import Reading, server_after_stop
from helpers.settings import ConnectionSettings

from support import wait_until

NOWHERE = ConnectionSettings(base_url="http://127.0.0.1:9/v1", model="m")  # no counters there


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


def test_after_stop_the_server_counter_must_stand_still(monkeypatch):
    time_ = scripted_server(monkeypatch, [(1, 480), (1, 500), (0, 500)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped and after.tokens_generated == 0 and after.settled_s == pytest.approx(0.1)
    assert after.seconds == pytest.approx(1.5)
    # a counter standing still with a running gauge stuck at 1 (vLLM after an abort): stopped
    time_ = scripted_server(monkeypatch, [(1, 500), (1, 530)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped is True and after.in_flight == 1
    line = Turn("p", outcome="stopped", after_stop=after).server_line()
    assert line.startswith("server stopped generating: its token counter stood still from 0.1 s "
                           "after Stop (0 more tokens in 1.4 s), though it still lists 1 request(s) "
                           "running: that running-requests gauge lags"), line
    # a counter still moving at the end: still generating, with or without a running gauge
    time_ = scripted_server(monkeypatch, [(1, 500 + 10 * i) for i in range(20)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped is False and after.settled_s is None and after.tokens_generated == 150
    line = Turn("p", outcome="stopped", after_stop=after).server_line()
    assert line == "server STILL GENERATING: 150 more tokens in the 1.5 s after Stop, 1 request(s) running"
    time_ = scripted_server(monkeypatch, [(None, 500 + 10 * i) for i in range(20)])
    assert server_after_stop(NOWHERE, seconds=1.5, **time_).stopped is False
    time_ = scripted_server(monkeypatch, [(None, 540)])
    assert server_after_stop(NOWHERE, seconds=1.5, **time_).stopped is True
    # one that reports nothing: nothing to say, and no waiting
    time_ = scripted_server(monkeypatch, [(None, None)])
    after = server_after_stop(NOWHERE, seconds=1.5, **time_)
    assert after.stopped is None and after.seconds == 0


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
    prompts = ["a", "b", "c"]
    ticks = iter([0.0, 0.5, 1.25, 2.0, 2.5])  # start, three arrivals, the end
    answers = [None] * 3
    with BatchProgress(prompts, labels=["first", "second", "third"], display="plain", out=out,
                       clock=lambda: next(ticks)) as progress:
        for index, answer in ScriptedBatch([2, 0, 1]).batch_as_completed(prompts):
            answers[index] = answer
            progress.arrived(index, answer)
    run = progress.run
    assert run.answers == answers == ["A", "B", "C"] and run.arrival_order == [2, 0, 1]
    assert run.out_of_order and run.arrival_s == [0.5, 1.25, 2.0] and run.total_s == 2.5
    assert (progress.bar.value, progress.bar.max, progress.count.value) == (3, 3, "3/3")
    assert progress.bar.bar_style == "success"
    arrivals = re.findall(r"Q(\d) after", progress.arrivals.value)
    assert arrivals == ["3", "1", "2"]
    assert re.findall(r"Q(\d): ", progress.in_order.value) == ["1", "2", "3"]
    text = out.getvalue()
    assert text.splitlines()[0] == "[ 1/3] Q3 after 0.5 s: C"
    assert "arrival order: Q3, Q1, Q2" in text and "Q2 second\n      → B" in text


def test_in_order_arrivals_are_said_so_and_a_failure_shows_on_the_bar():
    run = BatchRun(["x", "y"], ["X", "Y"], [0, 1], [0.1, 0.2], 0.2)
    assert not run.out_of_order and "(this time in prompt order)" in run.summary()
    out = io.StringIO()
    prompts = ["a", "b", "c"]
    with pytest.raises(TimeoutError), BatchProgress(prompts, display="plain", out=out) as progress:
        for index, answer in ScriptedBatch([1, 0, 2], fail_at=2).batch_as_completed(prompts):
            progress.arrived(index, answer)
    assert progress.bar.value == 2 and progress.bar.bar_style == "danger"
    assert progress.count.value.startswith("2/3, then: ") and progress.run is None
    assert out.getvalue().splitlines()[-1].startswith("stopped after 2/3, then: ")
    with pytest.raises(ValueError, match="2 labels for 3 prompts"):
        BatchProgress(["a", "b", "c"], labels=["x", "y"])
