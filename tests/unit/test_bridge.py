"""helpers.bridge: two clients of one endpoint on one clock, against a blocking endpoint and one
bridged with notebook 10's own `in_thread` (whose rules the exercise's tests check)."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from helpers.background_server import BackgroundServer
from helpers.bridge import two_clients, two_clients_chart
from helpers.sse import sse_event

from support.solutions import notebook_bridge

in_thread = notebook_bridge()

# ── two clients of one endpoint ────────────────────────────────────────────────────────────

class Ask(BaseModel):
    prompt: str
    max_tokens: int = 10


def slow_pieces(count: int, pause_s: float = 0.05):
    """A blocking fake model: `count` pieces, `pause_s` apart (each sleep blocks its thread)."""
    for i in range(count):
        time.sleep(pause_s)
        yield f"w{i} "


def fake_service() -> FastAPI:
    app = FastAPI()

    def respond(pieces):
        async def events():
            async for piece in pieces:
                yield sse_event({"delta": piece})
            yield sse_event({}, event="done")

        return StreamingResponse(events(), media_type="text/event-stream")

    async def as_async(iterable):
        for item in iterable:  # no await: holds the loop, as a blocking stream does
            yield item

    @app.post("/blocking")
    async def blocking(ask: Ask):
        return respond(as_async(slow_pieces(ask.max_tokens)))

    @app.post("/bridged")
    async def bridged(ask: Ask):
        return respond(in_thread(slow_pieces(ask.max_tokens)))

    @app.post("/broken")
    async def broken(ask: Ask):
        raise HTTPException(503, "no model here")

    return app


@pytest.fixture(scope="module")
def service():
    with BackgroundServer(fake_service()) as server:
        yield server


def test_a_blocking_endpoint_makes_the_second_client_wait_for_the_first(service):
    run = two_clients(f"{service.url}/blocking", {"prompt": "a", "max_tokens": 20},
                      {"prompt": "b", "max_tokens": 4})
    assert run.first.text.split() == [f"w{i}" for i in range(20)] and len(run.second.text.split()) == 4
    assert 0 < run.second_sent_s < run.first_last_token_s
    assert run.first_remaining_s > 0.5  # 20 pieces 50 ms apart, B asked after the first
    assert run.second_ttft_s >= run.first_remaining_s
    assert run.second.ttft_s >= run.first_last_token_s
    assert "waited" in run.summary() and list(run.results) == ["client A", "client B"]


def test_a_bridged_endpoint_streams_both_clients_at_once(service):
    run = two_clients(f"{service.url}/bridged", {"prompt": "a", "max_tokens": 20},
                      {"prompt": "b", "max_tokens": 4})
    assert run.second.ttft_s < run.first_last_token_s, "B's answer began before A's ended"
    assert run.second_ttft_s < run.first_remaining_s / 2


def test_two_clients_says_which_client_failed(service):
    with pytest.raises(RuntimeError, match="client A failed"):
        two_clients(f"{service.url}/broken", {"prompt": "a"}, {"prompt": "b"}, timeout_s=10)


def test_the_chart_has_one_panel_per_run_with_the_moment_b_asked(service):
    run = two_clients(f"{service.url}/bridged", {"prompt": "a", "max_tokens": 6}, {"prompt": "b"})
    fig = two_clients_chart({"one": run, "two": run}, title="both")
    assert [ax.get_title() for ax in fig.axes] == ["one", "two"]
    for ax in fig.axes:
        labels = ax.get_legend_handles_labels()[1]
        assert labels == ["client A", "client B", "B asks"]
