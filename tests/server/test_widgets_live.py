"""The chat panel and the batch progress against the real offline server: Stop stops the
server generating, the FAQ answers arrive out of order and land in order; notebook 4 shows the
panel (in its section on stopping a stream) and notebook 6 the progress (answers as they finish)."""

from __future__ import annotations

import re

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from helpers.batch_progress import BatchProgress
from helpers.chat_panel import ChatPanel
from helpers.grading.faq import FAQ_QUESTIONS
from helpers.server_metrics import read_metrics, requests_in_flight
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings

from notebook_runner import run_notebook
from support import wait_until

ESSAY = "Write a long essay about the history of bread."
ONE_SENTENCE = [f"{question} Answer in one sentence." for question in FAQ_QUESTIONS]  # many lengths


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
    # The server's own counters: nothing more generated after Stop, no request running.
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


class AnswerOf(BaseCallbackHandler):
    """Keeps the answer of the one call it is attached to (one handler per prompt)."""

    def __init__(self):
        self.text = None

    def on_llm_end(self, response, **kwargs):
        self.text = response.generations[0][0].text


def test_the_faq_answers_arrive_out_of_order_and_land_in_order(llm):
    seen = [AnswerOf() for _ in ONE_SENTENCE]
    configs = [{"callbacks": [handler]} for handler in seen]
    with BatchProgress(ONE_SENTENCE, labels=FAQ_QUESTIONS, display="none") as progress:
        for index, answer in llm.batch_as_completed(ONE_SENTENCE, configs, max_completion_tokens=60):
            progress.arrived(index, answer)
    run = progress.run
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


def test_notebook_4_stops_a_stream_from_the_chat_panel(offline_server):
    executed = run_notebook("solutions", "04_streams_as_generators")
    assert executed.error is None, executed.error
    chat = executed.tagged_text("chat-panel")
    assert "Model (stopped by you, stream closed" in chat, chat
    assert re.search(r"\[first token \d+\.\d\d s · total \d+\.\d\d s · \d+ chunks · \d+ tok/s", chat), chat
    assert re.search(r"server stopped generating: its token counter stood still from [\d.]+ s "
                     r"after Stop \(0 more tokens in [\d.]+ s\), no request running", chat), chat
    shown = next(c for c in executed.notebook.cells if "panel.show()" in c.source)
    assert "| stopped |" in executed.text_of(shown), "the saved record under the panel shows the turn"


def test_notebook_8_shows_the_batch_arrive(offline_server):
    executed = run_notebook("solutions", "06_async_and_concurrency")
    assert executed.error is None, executed.error
    progress = executed.tagged_text("batch-progress")
    arrived = [int(q) for q in re.findall(r"^\[\s*\d+/10\] Q(\d+) after", progress, re.M)]
    assert sorted(arrived) == list(range(1, 11)), progress
    listed = re.search(r"arrival order: (.*)", progress).group(1)
    assert listed == ", ".join(f"Q{q}" for q in arrived)
    assert arrived != sorted(arrived), f"the answers arrived in question order:\n{progress}"
    assert re.findall(r"^  Q(\d+) ", progress, re.M) == [str(q) for q in range(1, 11)]
    assert "10/10 answers in" in progress
