"""One definition of a stream's timings: every helper that turns a stream into a StreamResult
records through `StreamRecorder`, so the same timed chunks give the same numbers everywhere,
failures keep what arrived, and every stream is closed however reading ends."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from helpers import bridge
from helpers.async_streams import StreamBoard
from helpers.chat_panel import ChatPanel
from helpers.latency import measure_prompt, record_stream, run_load
from helpers.settings import ConnectionSettings
from helpers.streaming import StreamRecorder, stream_print

from support import FakeClock

NOWHERE = ConnectionSettings(base_url="http://127.0.0.1:9/v1", model="m")  # no counters there
TAIL_S = 0.25  # between the last chunk and the end of the stream ([DONE], the connection closing)


def chunk(content=None, finish=None, usage=None) -> dict:
    """An OpenAI-style chat.completion.chunk (as a dict)."""
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None
            else [], "usage": usage}


SCRIPT = [  # (seconds since the previous chunk, chunk)
    (0.5, chunk("")),  # the role chunk: no text, not the first token
    (0.25, chunk("Hel")),
    (0.25, chunk("lo")),
    (0.125, chunk(finish="stop")),
    (0.125, chunk(usage={"completion_tokens": 2, "prompt_tokens": 9})),
]


def timed(clock: FakeClock, script=SCRIPT, tail_s: float = 0.0, fail: BaseException | None = None):
    """The script's chunks, the fake clock moved on before each; then the tail (or `fail`)."""
    for delay, item in script:
        clock.now += delay
        yield item
    clock.now += tail_s
    if fail is not None:
        raise fail


async def atimed(clock: FakeClock, script=SCRIPT, tail_s: float = 0.0,
                 fail: BaseException | None = None):
    for item in timed(clock, script, tail_s, fail):
        await asyncio.sleep(0)
        yield item


class ScriptedModel:
    """A chat model whose `.stream` plays the timed script."""

    def __init__(self, clock: FakeClock, **timing):
        self.clock, self.timing = clock, timing

    def stream(self, messages, **kwargs):
        return timed(self.clock, **self.timing)


def scripted_client(clock: FakeClock, **timing):
    """An `openai` client whose streamed completion plays the timed script."""
    create = lambda **kwargs: timed(clock, **timing)  # noqa: E731
    return SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))


# ── every path, one recorder ─────────────────────────────────────────────────────────────────

def via_stream_print(clock, **timing):
    return stream_print(timed(clock, **timing), clock=clock, display="none")


def via_record_stream(clock, **timing):
    return asyncio.run(record_stream(atimed(clock, **timing), clock=clock))


def via_run_load(clock, **timing):
    run = asyncio.run(run_load(lambda prompt: atimed(clock, **timing), ["q"], 1, clock=clock))
    return run.results[0]


def via_measure_prompt(clock, **timing):
    return measure_prompt(scripted_client(clock, **timing), "m", [], clock=clock).result


def via_chat_panel(clock, **timing):
    panel = ChatPanel(ScriptedModel(clock, **timing), NOWHERE, display="none", clock=clock)
    return panel.ask("q", timeout_s=30).result


def via_two_clients(clock, monkeypatch, **timing):
    def fake_sse(url, payload, timeout_s):  # client A plays the script; B gets an empty answer
        return timed(clock, **timing) if payload["who"] == "A" else iter(())

    monkeypatch.setattr(bridge, "iter_sse_text", fake_sse)
    return bridge.two_clients("http://sse", {"who": "A"}, {"who": "B"}, clock=clock).first


def via_board(clock, **timing):
    board = StreamBoard(["s"], mode="none", clock=clock)
    for item in timed(clock, **timing):
        board.add("s", item)
    board.end("s")
    return board.finish()["s"]


PATHS = {"stream_print": via_stream_print, "record_stream": via_record_stream,
         "run_load": via_run_load, "measure_prompt": via_measure_prompt,
         "chat_panel": via_chat_panel, "two_clients": via_two_clients, "board": via_board}


def timings(result) -> dict:
    return {name: getattr(result, name) for name in (
        "text", "chunk_texts", "arrivals_s", "ttft_s", "total_s", "chunk_count", "content_chunks",
        "output_tokens", "finish_reason", "error")}


@pytest.mark.parametrize("tail_s", [0.0, TAIL_S])
def test_every_path_records_through_the_one_recorder_with_the_same_timings(monkeypatch, tail_s):
    ended = []
    original_end = StreamRecorder.end

    def spying_end(self, at_s=None):
        ended.append(self.result)
        return original_end(self, at_s)

    monkeypatch.setattr(StreamRecorder, "end", spying_end)
    seen = {}
    for name, path in PATHS.items():
        extra = {"monkeypatch": monkeypatch} if name == "two_clients" else {}
        result = path(FakeClock(), tail_s=tail_s, **extra)
        assert any(result is recorded for recorded in ended), f"{name} did not use StreamRecorder"
        seen[name] = timings(result)
    expected = {"text": "Hello", "chunk_texts": ["", "Hel", "lo", "", ""],
                "arrivals_s": [0.5, 0.75, 1.0, 1.125, 1.25], "ttft_s": 0.75,
                "total_s": 1.25 + tail_s, "chunk_count": 5, "content_chunks": 2,
                "output_tokens": 2, "finish_reason": "stop", "error": None}
    assert seen == {name: expected for name in PATHS}


# ── the drift each path had: errors, closing, the total ──────────────────────────────────────

@pytest.mark.parametrize("name", ["stream_print", "record_stream", "measure_prompt", "chat_panel"])
def test_a_failure_keeps_what_arrived_and_the_error(name):
    failing = {"stream_print": via_stream_print, "record_stream": via_record_stream,
               "chat_panel": via_chat_panel,
               "measure_prompt": lambda clock, **timing: measure_prompt(
                   scripted_client(clock, **timing), "m", [], clock=clock,
                   raise_errors=False).result}[name]
    result = failing(FakeClock(), script=SCRIPT[:3], tail_s=0.5,
                     fail=ConnectionError("connection reset by peer"))
    assert result.text == "Hello" and result.arrivals_s == [0.5, 0.75, 1.0]
    assert isinstance(result.error, ConnectionError) and result.error_message
    assert not result.completed and result.total_s == 1.5  # to the failure


def test_measure_prompt_raises_a_failure_after_closing_the_stream():
    closed = []

    def create(**kwargs):
        try:
            yield chunk("Hi")
            raise ConnectionError("connection reset by peer")
        finally:
            closed.append(True)

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    with pytest.raises(ConnectionError):
        measure_prompt(client, "m", [], clock=FakeClock())
    assert closed == [True]


def test_a_stream_that_cannot_open_is_kept_as_its_error():
    def refuse(**kwargs):
        raise ConnectionError("Connection refused")

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=refuse)))
    timing = measure_prompt(client, "m", [], clock=FakeClock(), raise_errors=False)
    assert isinstance(timing.result.error, ConnectionError) and timing.result.chunk_count == 0
    assert timing.prompt_tokens is None and timing.ttft_s is None


class ClosingStream:
    """A stream with its own close() (like the openai client's), iterated by a generator."""

    def __init__(self, items, close_fails: bool = False):
        self.items, self.close_fails = items, close_fails
        self.iterated_to_the_end = False
        self.closed = []

    def __iter__(self):
        try:
            yield from self.items
            self.iterated_to_the_end = True
        finally:
            self.closed.append("iterator")

    def close(self):
        self.closed.append("stream")
        if self.close_fails:
            raise ConnectionError("already broken")


def test_leaving_early_closes_the_stream_and_its_iterator():
    stream = ClosingStream(["a", "b", "c"])
    result = StreamRecorder(clock=FakeClock()).consume(stream, on_chunk=lambda rec, text: text == "b")
    assert result.text == "ab" and result.completed
    assert sorted(stream.closed) == ["iterator", "stream"] and not stream.iterated_to_the_end


def test_the_chat_panel_survives_a_stream_whose_close_fails():
    stream = ClosingStream(["Half "], close_fails=True)
    model = SimpleNamespace(stream=lambda messages, **kwargs: stream)
    panel = ChatPanel(model, NOWHERE, display="none", clock=FakeClock())
    turn = panel.ask("q", timeout_s=30)
    assert turn.outcome == "finished" and turn.result.text == "Half "
    assert "stream" in stream.closed and not panel.busy


def test_a_cancelled_async_stream_is_closed_and_the_cancel_goes_on():
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                yield "x"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def main():
        task = asyncio.create_task(record_stream(endless()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return closed.is_set()

    assert asyncio.run(main())


def test_a_board_stream_nobody_ended_ends_at_its_last_chunk():
    clock = FakeClock()
    board = StreamBoard(["told", "untold"], mode="none", clock=clock)
    for key in ("told", "untold"):
        clock.now += 1.0
        board.add(key, "x")
    clock.now += 0.5
    board.end("told")
    clock.now += 3.0  # gathering the others: not part of any stream
    results = board.finish()
    assert results["told"].total_s == 2.5  # its own end, not the board's
    assert results["untold"].total_s == 2.0


def test_the_running_total_follows_the_latest_chunk_until_the_end():
    clock = FakeClock()
    recorder = StreamRecorder(clock=clock)
    clock.now += 0.5
    recorder.add("a")
    assert recorder.result.total_s == 0.5 and recorder.ended_at is None
    clock.now += 0.25
    recorder.end()
    clock.now += 9.0
    recorder.end()  # once: a second end changes nothing
    assert recorder.result.total_s == 0.75 and recorder.ended_at == 100.75
