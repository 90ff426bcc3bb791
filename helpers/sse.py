"""Server-sent events, written and read by hand (with each event's arrival time): the SSE
lessons are about exactly this format, so no library hides it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


def sse_event(data: Any, event: str | None = None) -> str:
    """One server-sent event. Data that is not a string is sent as JSON; line breaks in it
    become several `data:` lines, as the SSE format asks."""
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def sse_response(pieces: AsyncIterable[str], clock: Callable[[], float] = time.perf_counter):
    """The SSE endpoint of notebook 7, reusable: a FastAPI `StreamingResponse` that sends one
    `data: {"delta": ...}` event per piece of text as it comes, then `event: done` whose data
    carries the server's own time to first token (`{"server_ttft_ms": ...}`, None without
    text). An error becomes an `error` event (one paragraph) instead of a cut stream; `done` and
    `error` are each the last event, and the response ends after them. When the client hangs
    up, the framework cancels the response and `pieces` is closed."""
    from fastapi.responses import StreamingResponse

    from .friendly_errors import explain

    async def events():
        started, first_s = clock(), None
        try:
            async for piece in pieces:
                if piece and first_s is None:
                    first_s = clock() - started
                yield sse_event({"delta": piece})
            ttft_ms = None if first_s is None else round(first_s * 1000, 1)
            yield sse_event({"server_ttft_ms": ttft_ms}, event="done")
        except Exception as exc:  # tell the client, do not just hang up
            yield sse_event(explain(exc), event="error")
        finally:
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()

    return StreamingResponse(events(), media_type="text/event-stream")


@dataclass(frozen=True)
class SSEEvent:
    event: str  # "message" unless the server named it
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Turn SSE lines (without line ends) into events, each as soon as its blank line arrives."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue  # a comment (servers send them to keep connections alive)
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield SSEEvent(event, "\n".join(data))


def sse_lines(url: str, payload: dict | None = None, method: str = "POST",
              timeout_s: float = 120.0) -> Iterator[str]:
    """The raw lines of an SSE response, each as it arrives. Closing the generator closes the
    connection."""
    import httpx

    with httpx.Client(timeout=timeout_s) as client:
        kwargs = {"json": payload} if method.upper() != "GET" else {"params": payload}
        with client.stream(method, url, **kwargs) as response:
            response.raise_for_status()
            yield from response.iter_lines()


def iter_sse_text(url: str, payload: dict | None = None, method: str = "POST",
                  done_event: str = "done", field: str = "delta",
                  timeout_s: float = 120.0) -> Iterator[str]:
    """The text pieces of a kit-style SSE stream, each as it arrives. Feed it to `stream_print`
    for timing and display.

    The protocol (notebook 7's): unnamed events carry the text (`data: {"delta": ...}`); an
    answer's last event is `done` or `error`. Named events end nothing in SSE itself, so the
    reader does: it returns at the end of `done` and raises `RuntimeError` with the server's
    reason at the end of `error`, reading no further (closing the connection); any other named
    event is skipped, whatever its data holds."""
    for event in parse_sse(sse_lines(url, payload, method, timeout_s)):
        if event.event == done_event:
            return
        if event.event == "error":
            raise RuntimeError(f"the server reported an error: {event.data}")
        if event.event == "message":  # only unnamed events carry text
            yield event.json().get(field, "")
