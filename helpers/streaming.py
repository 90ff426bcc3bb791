"""Consume any stream, show it as it arrives, and measure it.

`StreamRecorder` is the one place a stream's timings are taken: every helper that turns a
stream into a `StreamResult` (stream_print, the chat panel, the board of several streams, the
load runs, the two clients of the bridge lesson) records through it and only draws.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from .chunks import chunk_finish_reason, chunk_output_tokens, chunk_text, chunk_usage
from .friendly_errors import explain
from .live_display import LiveDisplay


@dataclass
class StreamResult:
    """What a stream delivered and how fast."""

    text: str = ""
    ttft_s: float | None = None  # time to the first non-empty chunk
    total_s: float = 0.0
    chunk_count: int = 0
    arrivals_s: list[float] = field(default_factory=list)  # per chunk, since the start
    chunk_texts: list[str] = field(default_factory=list)
    output_tokens: int | None = None  # from the server's usage data, when sent
    finish_reason: str | None = None
    error: BaseException | None = None
    error_message: str | None = None
    redraws: int = 0
    content_chunks: int = 0  # chunks that carried text
    usage: Any = None  # the usage data as the server sent it (the last chunk that had any)

    def record(self, chunk: Any, now: float) -> str:
        """Book one chunk that arrived `now` seconds after the start; returns its text."""
        text = chunk_text(chunk)
        self.chunk_count += 1
        self.arrivals_s.append(now)
        self.chunk_texts.append(text)
        self.output_tokens = chunk_output_tokens(chunk) or self.output_tokens
        self.finish_reason = chunk_finish_reason(chunk) or self.finish_reason
        self.usage = chunk_usage(chunk) or self.usage
        if text:
            if self.ttft_s is None:
                self.ttft_s = now
            self.content_chunks += 1
        return text

    def characters_received(self) -> list[int]:
        """Total characters received after each chunk (for timeline charts)."""
        return list(accumulate(len(text) for text in self.chunk_texts))

    @property
    def completed(self) -> bool:
        return self.error is None

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second over the whole call (usage data, else content chunks)."""
        tokens = self.output_tokens
        if tokens is None:
            tokens = self.content_chunks
        return tokens / self.total_s if self.total_s > 0 and tokens else None

    def stats_line(self) -> str:
        ttft = f"{self.ttft_s:.2f} s" if self.ttft_s is not None else "—"
        parts = [f"first token {ttft}", f"total {self.total_s:.2f} s", f"{self.chunk_count} chunks"]
        if self.tokens_per_s:
            estimated = "" if self.output_tokens is not None else " (est.)"
            parts.append(f"{self.tokens_per_s:.0f} tok/s{estimated}")
        return " · ".join(parts)

    def __str__(self) -> str:
        return self.text


def close_stream(stream: Any) -> None:
    """Close a stream (anything with `close()`): the connection goes, so the server stops
    generating and frees its slot. Closing a stream that already broke may fail: ignored."""
    close = getattr(stream, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - closing a broken stream may fail too
            pass


async def aclose_stream(stream: Any) -> None:
    """`close_stream` for async streams: `aclose()` (async generators), or a `close()` that
    may be a coroutine (the openai client's async stream)."""
    close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
    if callable(close):
        try:
            closing = close()
            if inspect.isawaitable(closing):
                await closing
        except Exception:  # noqa: BLE001 - closing a broken stream may fail too
            pass


OnChunk = Callable[["StreamRecorder", str], Any]


def _opens(stream: Any, protocol: str) -> bool:
    """Whether `stream` is a function that opens the stream rather than the stream itself."""
    return callable(stream) and not hasattr(stream, protocol)


class StreamRecorder:
    """Turns one stream into a StreamResult: each chunk's arrival time and text, the first
    token (the first chunk with text), usage and finish reason, the total, and the error that
    ended it (what arrived before it stays).

    `consume(stream)` / `aconsume(stream)` read a whole stream, closing it however reading
    ends; a display that is handed chunks one by one calls `add`, `fail` and `end` instead.
    Displays plug in as `on_chunk(recorder, text)`, called after every chunk is booked;
    returning True stops reading (the stream is closed). Times count from `started_at` (a
    `clock()` reading), else from when the recorder was made. `result.total_s` is from the
    start to the end of the stream (read to its end, failed, or left, and closed); while it
    streams, to its latest chunk.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 started_at: float | None = None):
        self.clock = clock
        self.start = clock() if started_at is None else started_at
        self.result = StreamResult()
        self.ended_at: float | None = None  # the clock reading when the stream ended

    def add(self, chunk: Any) -> str:
        """Book one chunk that arrived now; returns its text."""
        now = self.clock() - self.start
        text = self.result.record(chunk, now)
        self.result.text += text
        self.result.total_s = now
        return text

    def fail(self, exc: BaseException) -> None:
        """Keep the error that ended the stream (with a one-paragraph explanation)."""
        self.result.error = exc
        self.result.error_message = explain(exc)

    def end(self, at_s: float | None = None) -> StreamResult:
        """The stream is over: its total runs to now (or to `at_s` after the start). Once."""
        if self.ended_at is None:
            self.ended_at = self.clock() if at_s is None else self.start + at_s
            self.result.total_s = self.ended_at - self.start
        return self.result

    def consume(self, stream: Iterable[Any] | Callable[[], Iterable[Any]],
                on_chunk: OnChunk | None = None) -> StreamResult:
        """Read `stream` (or the one `stream()` opens: a failure to open is kept like any
        other) until it ends, fails (Ctrl-C too) or `on_chunk` says stop; close it; end."""
        opened = iterator = None
        try:
            opened = stream() if _opens(stream, "__iter__") else stream
            iterator = iter(opened)
            for chunk in iterator:
                text = self.add(chunk)
                if on_chunk is not None and on_chunk(self, text):
                    break
        except (Exception, KeyboardInterrupt) as exc:  # keep what arrived
            self.fail(exc)
        finally:
            close_stream(iterator)
            if opened is not iterator:  # an iterable with its own close() (the openai stream)
                close_stream(opened)
            self.end()
        return self.result

    async def aconsume(self, stream: AsyncIterable[Any] | Callable[[], AsyncIterable[Any]],
                       on_chunk: OnChunk | None = None) -> StreamResult:
        """`consume` for an async stream. A cancelled task closes the stream and is re-raised."""
        opened = iterator = None
        try:
            opened = stream() if _opens(stream, "__aiter__") else stream
            iterator = opened.__aiter__()
            async for chunk in iterator:
                text = self.add(chunk)
                if on_chunk is not None and on_chunk(self, text):
                    break
        except Exception as exc:  # noqa: BLE001 - one failed stream must not end the others
            self.fail(exc)
        finally:
            await aclose_stream(iterator)
            if opened is not iterator:
                await aclose_stream(opened)
            self.end()
        return self.result


def stream_print(
    stream: Iterable[Any],
    *,
    title: str | None = None,
    display: str = "auto",
    max_fps: float = 20.0,
    started_at: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    raise_errors: bool = False,
) -> StreamResult:
    """Show a stream's text as it arrives and return a StreamResult.

    Works with `llm.stream(...)`, OpenAI SDK streams, and iterables of strings.
    `started_at` (a `clock()` reading) counts from when the request was sent, for
    streams created before this call. An interrupted stream (server gone, Ctrl-C)
    keeps what arrived, shows it with a short note, and is returned with `.error` set.
    """
    view = LiveDisplay(mode=display, max_fps=max_fps, title=title, clock=clock)
    recorder = StreamRecorder(clock=clock, started_at=started_at)
    view.start()

    def redraw(recorder: StreamRecorder, text: str) -> None:
        if text and view.due():  # the stats line is built only when a redraw will happen
            view.update(recorder.result.text, recorder.result.stats_line())

    result = recorder.consume(stream, on_chunk=redraw)
    note = None
    if result.error is not None:
        note = (f"Stream interrupted after {result.chunk_count} chunks "
                f"({len(result.text)} characters kept). {result.error_message}")
    view.finish(result.text, result.stats_line(), note=note)
    result.redraws = view.redraws
    if raise_errors and result.error is not None:
        raise result.error
    return result
