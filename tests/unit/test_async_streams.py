"""helpers.async_streams: the live board for gathered streams, timelines, run_blocking."""

import asyncio
import io

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk

from helpers.async_streams import StreamBoard, plot_timelines, run_blocking, timelines_chart

from support import FakeClock


def test_board_records_each_stream_on_one_clock_and_prints_at_the_end():
    clock, out = FakeClock(), io.StringIO()
    board = StreamBoard(["a", "b"], title="two", mode="plain", clock=clock, out=out)
    clock.now += 0.5
    board.add("a", AIMessageChunk(content=""))
    clock.now += 0.5
    board.add("b", "Hi")
    board.add("a", AIMessageChunk(content="Yo"))
    clock.now += 1.0
    board.add("b", {"choices": [{"delta": {"content": " there"}}]})
    assert out.getvalue() == ""  # nothing printed before the end in plain mode
    results = board.finish()
    assert results["a"].text == "Yo" and results["a"].ttft_s == pytest.approx(1.0)
    assert results["a"].arrivals_s == pytest.approx([0.5, 1.0]) and results["a"].chunk_count == 2
    assert results["b"].text == "Hi there" and results["b"].total_s == pytest.approx(2.0)
    assert results["a"].content_chunks == 1 and results["b"].tokens_per_s == pytest.approx(1.0)
    printed = out.getvalue()
    assert printed.startswith("── two ──") and "── a ──\nYo\n[first token 1.00 s" in printed
    assert "── b ──\nHi there" in printed


def test_board_keeps_what_arrived_when_a_stream_fails():
    board = StreamBoard(["x"], mode="none")
    board.add("x", "part")
    board.fail("x", ConnectionError("Connection refused"))
    result = board.finish()["x"]
    assert result.text == "part" and not result.completed
    assert "No model server answered" in result.error_message
    assert "⚠ No model server" in board._bundle()["text/plain"]


def test_board_markdown_table_escapes_and_throttles():
    clock = FakeClock()
    board = StreamBoard(["q|1"], mode="none", max_fps=2, clock=clock)
    for _ in range(5):
        board.add("q|1", "a|b\n")
    assert board.redraws == 1  # the same instant: one redraw
    clock.now += 1
    board.add("q|1", "c")
    assert board.redraws == 2
    table = board._bundle()["text/markdown"]
    assert "| q\\|1 | a\\|b a\\|b a\\|b a\\|b a\\|b c |" in table


def test_board_with_gathered_fake_model_streams():
    llm = GenericFakeChatModel(messages=iter([AIMessage(content="one two"), AIMessage(content="three")]))
    board = StreamBoard(["p", "q"], mode="none")

    async def follow(key):
        async for chunk in llm.astream(key):
            board.add(key, chunk)
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(follow("p"), follow("q"))

    asyncio.run(main())
    results = board.finish()
    assert sorted(r.text for r in results.values()) == ["one two", "three"]


def test_timelines_chart_draws_one_line_per_stream():
    board = StreamBoard(["a", "b" * 50], mode="none")
    board.add("a", "xx")
    board.add("b" * 50, "yyy")
    fig = timelines_chart(board.finish(), title="t")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 and ax.get_title() == "t"
    assert plot_timelines(board.results) is not None


def test_run_blocking_runs_coroutines_even_inside_a_running_loop():
    async def inner():
        await asyncio.sleep(0)
        return [1]

    async def outer():  # a running loop, like Jupyter's
        with pytest.raises(RuntimeError, match="running event loop"):
            coro = inner()
            try:
                asyncio.run(coro)
            finally:
                coro.close()
        return run_blocking(inner), run_blocking(lambda: 5)

    assert asyncio.run(outer()) == ([1], 5)

    async def broken():
        raise KeyError("k")

    with pytest.raises(KeyError):
        run_blocking(broken)
