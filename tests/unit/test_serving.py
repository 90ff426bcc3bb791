"""Serving pieces: background uvicorn, SSE both ways, merged streams, the micro-batcher, Ray's processes."""

import asyncio
import time

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.responses import StreamingResponse
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from helpers.background_server import BackgroundServer
from helpers.micro_batching import MicroBatcher, gather_texts, is_finished, stream_group
from helpers.ports import port_open
from helpers.ray_processes import looks_like_ray, ray_processes
from helpers.sse import SSEEvent, iter_sse_text, parse_sse, sse_event, sse_lines
from helpers.streaming import stream_print


def test_sse_event_format_and_round_trip():
    assert sse_event("hi") == "data: hi\n\n"
    assert sse_event({"delta": "a\nb"}) == 'data: {"delta": "a\\nb"}\n\n'
    assert sse_event("two\nlines", event="note") == "event: note\ndata: two\ndata: lines\n\n"
    wire = sse_event({"delta": "x"}) + ": keep-alive\n\n" + sse_event("two\nlines", event="note") + \
        sse_event({}, event="done")
    events = list(parse_sse(wire.split("\n")))
    assert events == [SSEEvent("message", '{"delta": "x"}'), SSEEvent("note", "two\nlines"),
                      SSEEvent("done", "{}")]
    assert events[0].json() == {"delta": "x"}
    assert list(parse_sse(["data:no-space"])) == [SSEEvent("message", "no-space")]


def slow_app(pieces, pause_s=0.15):
    app = FastAPI()

    @app.post("/stream")
    async def stream(body: dict):
        async def events():
            for piece in pieces:
                await asyncio.sleep(pause_s)
                yield sse_event({"delta": piece + body.get("suffix", "")})
            yield sse_event({}, event="done")

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.websocket("/echo")
    async def echo(ws: WebSocket):
        await ws.accept()
        text = await ws.receive_text()
        await ws.send_text(text.upper())
        await ws.close()

    return app


def test_background_server_streams_sse_and_stops_cleanly():
    server = BackgroundServer(slow_app(["Hel", "lo", "!"])).start()
    try:
        assert server.running and port_open(server.port)
        assert server.url == f"http://127.0.0.1:{server.port}"
        result = stream_print(iter_sse_text(f"{server.url}/stream", {"suffix": ""}), display="none")
        assert result.text == "Hello!"
        assert result.chunk_count == 3
        assert result.arrivals_s == sorted(result.arrivals_s)
        assert len(set(result.arrivals_s)) == 3  # one arrival per event: it streamed
        raw = list(sse_lines(f"{server.url}/stream", {"suffix": "."}))
        assert raw[0] == 'data: {"delta": "Hel."}' and "event: done" in raw
    finally:
        server.stop()
    assert not server.running and not port_open(server.port)


def test_background_server_context_manager_and_websocket():
    from websockets.sync.client import connect

    with BackgroundServer(slow_app([])) as server:
        with connect(f"{server.ws_url}/echo") as ws:
            ws.send("shout")
            assert ws.recv() == "SHOUT"
    assert not port_open(server.port)


def test_iter_sse_text_raises_on_an_error_event(monkeypatch):
    import helpers.sse as serving

    wire = sse_event("boom", event="error").split("\n")
    monkeypatch.setattr(serving, "sse_lines", lambda *a, **k: iter(wire))
    with pytest.raises(RuntimeError, match="boom"):
        list(iter_sse_text("http://unused"))


def fake_llm(*answers):
    return GenericFakeChatModel(messages=iter([AIMessage(content=a) for a in answers]))


def test_stream_group_rows_are_aligned_and_end_with_stop_iteration():
    llm = fake_llm("one two three", "four")
    rows = []

    async def main():
        async for row in stream_group(llm, ["a", "b"]):
            rows.append(row)

    asyncio.run(main())
    assert all(len(row) == 2 for row in rows)
    texts = ["", ""]
    for row in rows:
        for i, item in enumerate(row):
            if not is_finished(item):
                texts[i] += item
    assert sorted(texts) == ["four", "one two three"]
    assert all(item is StopIteration for item in rows[-1])
    # once finished, a prompt stays finished
    for i in range(2):
        first_stop = next(n for n, row in enumerate(rows) if row[i] is StopIteration)
        assert all(row[i] is StopIteration for row in rows[first_stop:])


def test_stream_group_raises_when_a_prompt_fails():
    class Failing:
        async def astream(self, prompt):
            yield AIMessage(content="x")
            raise ValueError("model broke")

    async def main():
        return [row async for row in stream_group(Failing(), ["a"])]

    with pytest.raises(ValueError, match="model broke"):
        asyncio.run(main())


async def echo_batches(sizes_seen, requests, fail_on=None):
    """A fake batched model: answers every request word by word, in lockstep."""
    sizes_seen.append(len(requests))
    words = [r.split() for r in requests]
    for step in range(max(len(w) for w in words)):
        await asyncio.sleep(0.01)
        if fail_on is not None and step == 1 and any(fail_on in r for r in requests):
            raise RuntimeError("batch failed")
        yield [w[step] + " " if step < len(w) else StopIteration for w in words]


def test_micro_batcher_groups_requests_and_streams_each_back():
    sizes = []

    async def main():
        batcher = MicroBatcher(lambda reqs: echo_batches(sizes, reqs), max_batch_size=3, wait_s=0.05)
        prompts = ["a b c", "d e", "f", "g h i j", "k"]
        texts = await gather_texts(batcher.stream(p) for p in prompts)
        late = await gather_texts([batcher.stream("late one")])
        await batcher.aclose()
        return batcher, prompts, texts, late

    batcher, prompts, texts, late = asyncio.run(main())
    assert [t.split() for t in texts] == [p.split() for p in prompts]
    assert late == ["late one "]
    assert batcher.groups == [3, 2, 1] == sizes


def test_micro_batcher_window_opens_at_the_first_arrival_and_records_arrivals():
    sizes = []

    async def main():
        batcher = MicroBatcher(lambda reqs: echo_batches(sizes, reqs), max_batch_size=8, wait_s=1.0)
        asked = []
        for request, pause_s in (("a", 0), ("b", 0.1), ("c", 0.95)):  # c: >= 1.05 s after a
            await asyncio.sleep(pause_s)
            asked.append(asyncio.ensure_future(gather_texts([batcher.stream(request)])))
        texts = await asyncio.gather(*asked)
        await batcher.aclose()
        return batcher, texts

    batcher, texts = asyncio.run(main())
    assert texts == [["a "], ["b "], ["c "]]
    # b joined a's window; c came after it closed (a sliding window would have taken it too)
    assert batcher.groups == [2, 1] == sizes
    arrivals = batcher.arrivals
    assert len(arrivals) == 3 and arrivals[2] - arrivals[0] >= 1.05 > arrivals[1] - arrivals[0]


def test_micro_batcher_judges_by_arrival_when_the_loop_was_busy():
    async def main():
        batcher = MicroBatcher(lambda reqs: echo_batches([], reqs), max_batch_size=8, wait_s=0.1)
        first = asyncio.ensure_future(gather_texts([batcher.stream("a")]))
        await asyncio.sleep(0.02)  # a arrived; its window closes 0.1 s after that
        time.sleep(0.3)  # the event loop is blocked past the window
        second = asyncio.ensure_future(gather_texts([batcher.stream("b")]))
        await asyncio.gather(first, second)
        await batcher.aclose()
        return batcher

    batcher = asyncio.run(main())
    assert batcher.arrivals[1] - batcher.arrivals[0] >= 0.3
    assert batcher.groups == [1, 1], "b arrived after a's window, however late the batcher looked"


def test_micro_batcher_passes_errors_to_every_caller_of_the_group():
    async def main():
        batcher = MicroBatcher(lambda reqs: echo_batches([], reqs, fail_on="x"), wait_s=0.05)
        results = await asyncio.gather(*(gather_texts([batcher.stream(p)]) for p in ["x y z", "u v w"]),
                                       return_exceptions=True)
        await batcher.aclose()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)


def test_micro_batcher_with_stream_group_and_a_chat_model():
    llm = fake_llm("alpha beta", "gamma")

    async def main():
        batcher = MicroBatcher(lambda prompts: stream_group(llm, prompts), wait_s=0.05)
        texts = await gather_texts(batcher.stream(p) for p in ["q1", "q2"])
        return batcher.groups, texts

    groups, texts = asyncio.run(main())
    assert groups == [2] and sorted(texts) == ["alpha beta", "gamma"]


def test_looks_like_ray_and_ray_processes_of_a_plain_process():
    assert looks_like_ray(["/venv/lib/ray/core/src/ray/raylet/raylet", "--node_ip_address=127.0.0.1"])
    assert looks_like_ray([], name="gcs_server")
    assert looks_like_ray(["ray::ServeReplica:default:Chat"])
    assert looks_like_ray(["python", "-u", "/venv/lib/python3.11/site-packages/ray/_private/log_monitor.py"])
    assert not looks_like_ray(["python", "-m", "ipykernel_launcher", "-f", "kernel.json"], name="python")
    assert ray_processes() == []  # the test process started no Ray
