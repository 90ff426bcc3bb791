"""helpers.bridge: a blocking producer read as an async iterator from a thread of its own (order,
errors, a free event loop, clean-up when the consumer leaves), and two clients of one endpoint
on one clock."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from helpers.background_server import BackgroundServer
from helpers.bridge import iterate_in_thread, two_clients, two_clients_chart
from helpers.sse import sse_event

DEADLINE_S = 5.0  # how long a thread may take to notice and close (a deadline, not a timing)


class Recorded:
    """A blocking generator that records its threads, what it produced and how it ended."""

    def __init__(self, items, pause_s=0.0, error=None, before_item=None):
        self.items, self.pause_s, self.error, self.before_item = items, pause_s, error, before_item
        self.threads: set[int] = set()
        self.produced = 0
        self.finished = False
        self.closed_early = threading.Event()

    def __iter__(self):
        try:
            for i, item in enumerate(self.items):
                self.threads.add(threading.get_ident())
                if self.before_item:
                    self.before_item(i)
                time.sleep(self.pause_s)
                self.produced += 1
                yield item
            if self.error is not None:
                raise self.error
            self.finished = True
        finally:
            if not self.finished:
                self.closed_early.set()


async def collect(stream, limit=None):
    items = []
    async for item in stream:
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    await stream.aclose()
    return items


def wait_for(event: threading.Event) -> bool:
    return event.wait(DEADLINE_S)


# ── the bridge ─────────────────────────────────────────────────────────────────────────────

def test_items_arrive_in_order_from_another_thread_and_the_stream_ends():
    producer = Recorded(["Once", " upon", " a", " time"])

    async def main():
        return await collect(iterate_in_thread(iter(producer))), threading.get_ident()

    items, loop_thread = asyncio.run(main())
    assert items == ["Once", " upon", " a", " time"]
    assert producer.finished and not producer.closed_early.is_set()
    assert producer.threads and loop_thread not in producer.threads
    assert asyncio.run(collect(iterate_in_thread([]))) == []
    assert asyncio.run(collect(iterate_in_thread(range(500)))) == list(range(500))


def test_a_source_given_as_a_function_is_called_in_the_thread():
    """For producers whose first call blocks (the openai client sends the request in `create`)."""
    called_in = []

    def open_stream():
        called_in.append(threading.get_ident())
        return iter("abc")

    async def main():
        return await collect(iterate_in_thread(open_stream)), threading.get_ident()

    items, loop_thread = asyncio.run(main())
    assert items == ["a", "b", "c"] and called_in and called_in[0] != loop_thread


def test_the_producers_error_is_raised_in_the_consumer_after_its_items():
    failure = ValueError("the model failed")
    seen = []

    async def main():
        async for item in iterate_in_thread(iter(Recorded(["a", "b"], error=failure))):
            seen.append(item)

    with pytest.raises(ValueError) as raised:
        asyncio.run(main())
    assert raised.value is failure and seen == ["a", "b"]


def test_the_event_loop_runs_while_the_producer_blocks():
    loop_ran = threading.Event()

    def wait_for_the_loop(i):
        if i == 1:
            assert loop_ran.wait(3), "the loop never ran while the producer blocked"

    async def main():
        asyncio.get_running_loop().call_soon(loop_ran.set)
        return await collect(iterate_in_thread(iter(Recorded(["first", "second"],
                                                            before_item=wait_for_the_loop))))

    assert asyncio.run(main()) == ["first", "second"]


def test_every_stream_has_a_thread_of_its_own():
    both_running = threading.Barrier(8, timeout=DEADLINE_S)  # more streams than a small pool has
    producers = [Recorded([n, n], before_item=lambda i: i == 0 and both_running.wait()) for n in range(8)]

    async def main():
        return await asyncio.gather(*(collect(iterate_in_thread(iter(p))) for p in producers))

    assert asyncio.run(main()) == [[n, n] for n in range(8)]
    threads = [p.threads for p in producers]
    assert all(not a & b for a, b in itertools.combinations(threads, 2))


@pytest.mark.parametrize("how", ["break", "cancel", "loop ends"])
def test_a_consumer_that_leaves_stops_the_thread_and_closes_the_producer(how):
    producer = Recorded(range(10_000), pause_s=0.005)

    async def main():
        stream = iterate_in_thread(iter(producer))
        if how == "break":
            assert await collect(stream, limit=3) == [0, 1, 2]
        elif how == "cancel":
            async def consume():
                async for _ in stream:
                    pass

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:  # the consumer returns without closing its stream; asyncio.run closes it
            async for _ in stream:
                break

    asyncio.run(main())
    assert wait_for(producer.closed_early), f"the producer was not closed after a {how}"
    stopped_at = producer.produced
    time.sleep(0.1)
    assert producer.produced == stopped_at < 10_000, "the producer kept producing"


def test_an_iterable_with_its_own_close_is_closed_too():
    """The openai client's stream closes its connection in its own close(), not its iterator's."""

    class StreamLike:
        def __init__(self):
            self.producer, self.closed = Recorded(range(10_000), pause_s=0.005), threading.Event()

        def __iter__(self):
            return iter(self.producer)

        def close(self):
            self.closed.set()

    like = StreamLike()
    assert asyncio.run(collect(iterate_in_thread(lambda: like), limit=1)) == [0]
    assert wait_for(like.closed) and wait_for(like.producer.closed_early)


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
        return respond(iterate_in_thread(slow_pieces(ask.max_tokens)))

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
