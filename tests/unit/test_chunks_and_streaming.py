"""stream_print: text, timing, throttling, interruption, chunk kinds."""

import io

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk

from helpers.chunks import chunk_finish_reason, chunk_output_tokens, chunk_text
from helpers.live_display import LiveDisplay
from helpers.streaming import stream_print


class FakeClock:
    """A clock that advances only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def timed_stream(clock, items, step=0.01, first_delay=0.0):
    clock.now += first_delay
    for item in items:
        clock.now += step
        yield item


def test_plain_strings_collects_text_and_timing(capsys):
    clock = FakeClock()
    result = stream_print(timed_stream(clock, ["Hel", "lo", " world"], step=0.5), clock=clock,
                          display="plain")
    assert result.text == "Hello world"
    assert result.chunk_count == 3
    assert result.arrivals_s == pytest.approx([0.5, 1.0, 1.5])
    assert result.ttft_s == pytest.approx(0.5)
    assert result.total_s == pytest.approx(1.5)
    assert result.completed
    out = capsys.readouterr().out
    assert "Hello world" in out and "first token 0.50 s" in out


def test_ttft_counts_from_first_non_empty_chunk():
    clock = FakeClock()
    chunks = [AIMessageChunk(content=""), AIMessageChunk(content=""), AIMessageChunk(content="Hi")]
    result = stream_print(timed_stream(clock, chunks, step=1.0), clock=clock, display="none")
    assert result.chunk_count == 3
    assert result.ttft_s == pytest.approx(3.0)


def test_started_at_counts_from_the_request():
    clock = FakeClock()
    sent = clock.now
    clock.now += 2.0  # the request was sent 2 s before stream_print was called
    result = stream_print(timed_stream(clock, ["a"], step=0.5), clock=clock, started_at=sent,
                          display="none")
    assert result.ttft_s == pytest.approx(2.5)


def test_langchain_fake_model_stream_and_usage():
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three")]))
    result = stream_print(model.stream("hi"), display="none")
    assert result.text == "one two three"
    assert result.chunk_count >= 3


def test_openai_style_chunks_role_content_final_usage():
    def chunk(delta, finish=None, usage=None):
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None
                else [], "usage": usage}

    chunks = [chunk({"role": "assistant"}), chunk({"content": "Two"}), chunk({}, finish="stop"),
              chunk(None, usage={"completion_tokens": 7})]
    assert [chunk_text(c) for c in chunks] == ["", "Two", "", ""]
    assert chunk_finish_reason(chunks[2]) == "stop"
    assert chunk_output_tokens(chunks[3]) == 7
    clock = FakeClock()
    result = stream_print(timed_stream(clock, chunks, step=0.25), clock=clock, display="none")
    assert result.text == "Two"
    assert result.finish_reason == "stop"
    assert result.output_tokens == 7
    assert result.tokens_per_s == pytest.approx(7 / 1.0)


def test_openai_sdk_objects():
    from openai.types.chat import ChatCompletionChunk

    raw = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
           "choices": [{"index": 0, "delta": {"content": "hey"}, "finish_reason": None}]}
    assert chunk_text(ChatCompletionChunk.model_validate(raw)) == "hey"


def test_interrupted_stream_keeps_partial_text(capsys):
    def broken():
        yield "partial "
        yield "answer"
        raise ConnectionError("Connection refused")

    result = stream_print(broken(), display="plain")
    assert result.text == "partial answer"
    assert not result.completed
    assert isinstance(result.error, ConnectionError)
    out = capsys.readouterr().out
    assert "partial answer" in out
    assert "Stream interrupted after 2 chunks" in out
    assert "make server" in out  # says what to do


def test_keyboard_interrupt_keeps_partial_text():
    def interrupted():
        yield "so far"
        raise KeyboardInterrupt

    result = stream_print(interrupted(), display="none")
    assert result.text == "so far"
    assert isinstance(result.error, KeyboardInterrupt)


def test_raise_errors_reraises_after_showing():
    def broken():
        yield "x"
        raise ConnectionError("boom")

    with pytest.raises(ConnectionError):
        stream_print(broken(), display="none", raise_errors=True)


def test_stream_is_closed_when_interrupted():
    closed = []

    class Stream:
        def __iter__(self):
            yield "a"
            raise ConnectionError("gone")

        def close(self):
            closed.append(True)

    stream_print(Stream(), display="none")
    assert closed == [True]


def test_redraws_capped_whatever_the_token_rate():
    clock = FakeClock()
    # 5000 chunks over 2 simulated seconds (2500 chunks/s)
    result = stream_print(timed_stream(clock, ["x"] * 5000, step=2.0 / 5000), clock=clock,
                          display="none", max_fps=20)
    assert result.text == "x" * 5000
    # 20 per second over 2 s, plus the final redraw
    assert 35 <= result.redraws <= 42


def test_plain_display_writes_only_new_text_and_final_stats():
    out = io.StringIO()
    clock = FakeClock()
    view = LiveDisplay(mode="plain", max_fps=1000, clock=clock, out=out)
    view.start()
    for text in ["a", "ab", "abc"]:
        clock.now += 1
        view.update(text, "stats")
    view.finish("abcd", "final stats")
    assert out.getvalue() == "abcd\n\n[final stats]\n"


def test_display_mode_env_override(monkeypatch):
    from helpers.live_display import choose_mode

    monkeypatch.setenv("KIT_DISPLAY", "plain")
    assert choose_mode("auto") == "plain"
    monkeypatch.setenv("KIT_DISPLAY", "rich")
    assert choose_mode("auto") == "rich"
    monkeypatch.delenv("KIT_DISPLAY")
    assert choose_mode("auto") == "plain"  # no kernel here
    assert choose_mode("none") == "none"
