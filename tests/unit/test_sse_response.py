"""helpers.sse.sse_response, notebook 7's SSE endpoint made reusable (notebook 10 serves its
endpoints with it): pieces as `delta` events, then `done` with the server's own time to first
token, an error as an `error` event (the last one: `iter_sse_text` raises with its reason), and a
client that hangs up closes the pieces."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest
from fastapi import FastAPI

from helpers.background_server import BackgroundServer
from helpers.bridge import plot_two_clients, two_clients
from helpers.sse import iter_sse_text, parse_sse, sse_lines, sse_response

DEADLINE_S = 5.0  # how long a hang-up may take to close the pieces (a deadline, not a timing)


def app_with(closed: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.post("/words")
    async def words(body: dict):
        async def pieces():
            for word in body["words"]:
                await asyncio.sleep(0.01)
                yield word

        return sse_response(pieces())

    @app.post("/fails")
    async def fails(body: dict):
        async def pieces():
            yield "half an answer"
            raise ConnectionError("the model server went away")

        return sse_response(pieces())

    @app.post("/endless")
    async def endless(body: dict):
        async def pieces():
            try:
                for i in itertools.count():
                    await asyncio.sleep(0.01)
                    yield f"w{i} "
            finally:
                closed.set()

        return sse_response(pieces())

    return app


def test_pieces_then_done_with_the_servers_ttft_an_error_event_and_a_hang_up_that_closes():
    closed = threading.Event()
    with BackgroundServer(app_with(closed)) as server:
        events = list(parse_sse(sse_lines(f"{server.url}/words", {"words": ["Hel", "lo", ""]})))
        assert [e.event for e in events] == ["message"] * 3 + ["done"]
        assert [e.json()["delta"] for e in events[:3]] == ["Hel", "lo", ""]
        ttft_ms = events[-1].json()["server_ttft_ms"]
        assert isinstance(ttft_ms, float) and 0 < ttft_ms < 5000
        assert list(parse_sse(sse_lines(f"{server.url}/words", {"words": []})))[-1].json() == {
            "server_ttft_ms": None}, "no text, no first token"

        failed = list(parse_sse(sse_lines(f"{server.url}/fails", {})))
        assert [e.event for e in failed] == ["message", "error"], "`error` is the last event"
        assert "went away" in failed[-1].data, "the client reads why, instead of a cut stream"
        pieces = []
        with pytest.raises(RuntimeError, match="went away"):  # iter_sse_text stops at `error`
            for piece in iter_sse_text(f"{server.url}/fails", {}):
                pieces.append(piece)
        assert pieces == ["half an answer"], "the text before the error still came through"

        reader = sse_lines(f"{server.url}/endless", {})
        assert len(list(itertools.islice(reader, 6))) == 6
        assert not closed.is_set()
        reader.close()  # the client hangs up
        assert closed.wait(DEADLINE_S), "the hang-up closed the pieces"


def test_plot_two_clients_returns_the_chart_it_shows():
    closed = threading.Event()
    with BackgroundServer(app_with(closed)) as server:
        run = two_clients(f"{server.url}/words", {"words": ["a ", "b ", "c "]}, {"words": ["x"]})
    fig = plot_two_clients({"one": run, "two": run})
    assert [ax.get_title() for ax in fig.axes] == ["one", "two"]
