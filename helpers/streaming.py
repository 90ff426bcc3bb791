"""Consume any stream, show it as it arrives, and measure it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from .chunks import chunk_finish_reason, chunk_output_tokens, chunk_text
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

    def record(self, chunk: Any, now: float) -> str:
        """Book one chunk that arrived `now` seconds after the start; returns its text."""
        text = chunk_text(chunk)
        self.chunk_count += 1
        self.arrivals_s.append(now)
        self.chunk_texts.append(text)
        self.output_tokens = chunk_output_tokens(chunk) or self.output_tokens
        self.finish_reason = chunk_finish_reason(chunk) or self.finish_reason
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
    result = StreamResult()
    start = clock() if started_at is None else started_at
    parts: list[str] = []
    view.start()
    try:
        for chunk in stream:
            now = clock() - start
            text = result.record(chunk, now)
            if text:
                parts.append(text)
                if view.due():  # build the text and stats only when a redraw will happen
                    result.total_s = now
                    view.update("".join(parts), result.stats_line())
    except (Exception, KeyboardInterrupt) as exc:  # keep what arrived
        result.error = exc
        result.error_message = explain(exc)
    finally:
        close_stream(stream)
    result.total_s = clock() - start
    result.text = "".join(parts)
    note = None
    if result.error is not None:
        note = (f"Stream interrupted after {result.chunk_count} chunks "
                f"({len(result.text)} characters kept). {result.error_message}")
    view.finish(result.text, result.stats_line(), note=note)
    result.redraws = view.redraws
    if raise_errors and result.error is not None:
        raise result.error
    return result
