"""Serving pieces: background uvicorn, SSE both ways, merged streams, the micro-batcher, Ray's processes."""

import asyncio

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.responses import StreamingResponse

from helpers.background_server import BackgroundServer
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


class Wire:
    """SSE lines from `text`, then keep-alive comments; counts the lines read after the text."""

    def __init__(self, text):
        self.lines, self.read_after = text.split("\n")[:-1], 0

    def __iter__(self):
        yield from self.lines
        for _ in range(20):
            self.read_after += 1
            yield ": keep-alive"
            yield ""


def test_iter_sse_text_raises_on_an_error_event(monkeypatch):
    import helpers.sse as serving

    wire = sse_event("boom", event="error").split("\n")
    monkeypatch.setattr(serving, "sse_lines", lambda *a, **k: iter(wire))
    with pytest.raises(RuntimeError, match="boom"):
        list(iter_sse_text("http://unused"))


def test_iter_sse_text_yields_only_unnamed_events_and_stops_at_done_or_error(monkeypatch):
    """Notebook 7's protocol: only unnamed events carry text; `done` and `error` are each an
    answer's last event, and the reader reads nothing after either (the server may keep the
    connection open with keep-alives)."""
    import helpers.sse as serving

    answer = (sse_event({"delta": "Hel"}) + sse_event({"delta": "x", "note": 1}, event="progress")
              + ": keep-alive\n\n" + sse_event({"delta": "lo"}))
    done = Wire(answer + sse_event({"delta": "not text"}, event="done"))
    monkeypatch.setattr(serving, "sse_lines", lambda *a, **k: iter(done))
    assert list(iter_sse_text("http://unused")) == ["Hel", "lo"], "a named event's delta is not text"
    assert done.read_after == 0, "nothing is read after the end of `done`"

    failed = Wire(answer + sse_event({"delta": "not text", "error": "went away"}, event="error"))
    monkeypatch.setattr(serving, "sse_lines", lambda *a, **k: iter(failed))
    pieces = []
    with pytest.raises(RuntimeError, match="went away"):
        for piece in iter_sse_text("http://unused"):
            pieces.append(piece)
    assert pieces == ["Hel", "lo"] and failed.read_after == 0, "the text before `error`, nothing after"


def test_looks_like_ray_and_ray_processes_of_a_plain_process():
    assert looks_like_ray(["/venv/lib/ray/core/src/ray/raylet/raylet", "--node_ip_address=127.0.0.1"])
    assert looks_like_ray([], name="gcs_server")
    assert looks_like_ray(["ray::ServeReplica:default:Chat"])
    assert looks_like_ray(["python", "-u", "/venv/lib/python3.11/site-packages/ray/_private/log_monitor.py"])
    assert not looks_like_ray(["python", "-m", "ipykernel_launcher", "-f", "kernel.json"], name="python")
    assert ray_processes() == []  # the test process started no Ray
