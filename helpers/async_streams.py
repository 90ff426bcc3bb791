"""Async helpers: a live board for several streams at once, their timelines, and running a
coroutine to completion from synchronous code while Jupyter's event loop is busy."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

from .live_display import ThrottledDisplay
from .streaming import StreamRecorder, StreamResult


class StreamBoard(ThrottledDisplay):
    """One row per stream, redrawn as chunks arrive: for `asyncio.gather` of several streams.

    >>> board = StreamBoard(questions, title="three at once")
    >>> async def follow(q):
    ...     async for chunk in llm.astream(q):
    ...         board.add(q, chunk)
    >>> await asyncio.gather(*(follow(q) for q in questions))
    >>> results = board.finish()   # {question: StreamResult}

    In JupyterLab the board is one table updated in place (at most `max_fps` times a second);
    headless runs (nbclient, grading) print every stream once, at the end.
    """

    def __init__(self, keys: Iterable[Hashable], title: str | None = None, mode: str = "auto",
                 max_fps: float = 10.0, clock: Callable[[], float] = time.perf_counter, out=None):
        super().__init__(mode=mode, max_fps=max_fps, title=title, clock=clock, out=out)
        self.keys = list(keys)
        self._start = clock()
        self._recorders = {key: StreamRecorder(clock=clock, started_at=self._start)
                           for key in self.keys}
        self.results: dict[Hashable, StreamResult] = {
            key: recorder.result for key, recorder in self._recorders.items()}
        if self.mode == "rich":
            self._show(self._bundle())

    def add(self, key: Hashable, chunk: Any) -> None:
        """Record one chunk of stream `key` (a message chunk, an SDK chunk or a string)."""
        self._recorders[key].add(chunk)
        self._maybe_draw()

    def fail(self, key: Hashable, exc: BaseException) -> None:
        """Mark stream `key` as failed; what arrived before stays."""
        recorder = self._recorders[key]
        recorder.fail(exc)
        recorder.end()
        self._maybe_draw()

    def end(self, key: Hashable) -> None:
        """Stream `key` has ended: its total runs to now."""
        self._recorders[key].end()

    def finish(self) -> dict[Hashable, StreamResult]:
        """Final draw (always); returns one StreamResult per stream. A stream nobody ended
        (`end`, `fail`) ends at its last chunk, the last the board saw of it."""
        for recorder in self._recorders.values():
            arrivals = recorder.result.arrivals_s
            recorder.end(at_s=arrivals[-1] if arrivals else 0.0)
        self._draw(final=True)
        return self.results

    def _maybe_draw(self) -> None:
        if self.due():
            self._mark_drawn()
            self._draw()

    @staticmethod
    def _stats(result: StreamResult) -> str:
        first = f"{result.ttft_s:.2f} s" if result.ttft_s is not None else "—"
        return f"first token {first} · last {result.total_s:.2f} s · {result.chunk_count} chunks"

    def _bundle(self) -> dict:
        def cell(text: str) -> str:
            return " ".join(text.split()).replace("|", "\\|") or "…"

        rows = ["| stream | answer so far | timing |", "|---|---|---|"]
        plain = []
        for key in self.keys:
            result = self.results[key]
            shown = result.text + (f" ⚠ {result.error_message}" if result.error is not None else "")
            rows.append(f"| {cell(str(key))} | {cell(shown)} | {self._stats(result)} |")
            plain.append(f"── {key} ──\n{shown.strip()}\n[{self._stats(result)}]")
        title = f"**{self.title}**\n\n" if self.title else ""
        return {"text/markdown": title + "\n".join(rows), "text/plain": "\n\n".join(plain)}

    def _draw(self, final: bool = False) -> None:
        self.redraws += 1
        if self.mode == "rich":
            self._show(self._bundle())
        elif self.mode == "plain" and final:
            if self.title:
                self.out.write(f"── {self.title} ──\n\n")
            self.out.write(self._bundle()["text/plain"] + "\n")
            self.out.flush()


def timelines_chart(results: dict[Hashable, StreamResult], title: str | None = None, ax=None):
    """Characters received over time, one line per stream, on a shared clock."""
    from .charts import _figure

    fig, ax = _figure(ax)
    for key, result in results.items():
        label = str(key) if len(str(key)) <= 40 else str(key)[:37] + "…"
        ax.step(result.arrivals_s, result.characters_received(), where="post", label=label)
    ax.set_xlabel("seconds since the streams started")
    ax.set_ylabel("characters")
    ax.set_xlim(left=0)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title or "Several streams, one clock", fontsize=9)
    return fig


def plot_timelines(results: dict[Hashable, StreamResult], title: str | None = None, ax=None):
    """Show (and return) `timelines_chart` for the results of a StreamBoard."""
    from .charts import show

    return show(timelines_chart(results, title=title, ax=ax))


def run_blocking(fn: Callable[[], Awaitable[Any]] | Callable[[], Any]) -> Any:
    """Call fn() in a worker thread with its own event loop when it returns a coroutine.

    For timing async work with the synchronous `compare`/`concurrency_sweep` helpers from
    inside Jupyter, whose own loop is already running (where `asyncio.run` refuses to work).
    """
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            value = fn()
            if asyncio.iscoroutine(value):
                value = asyncio.run(value)
            result["value"] = value
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=work, name="run-blocking")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
