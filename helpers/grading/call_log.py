"""Record what an LLM's calls did (prompt, start, end, output) — for graders' hidden tests.

Graders decide "was `batch` used?" from behaviour: `batch` runs its calls concurrently,
so their time intervals overlap; a loop of `invoke` never overlaps. No wall-clock
thresholds, no reading of source code.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler


@dataclass
class Call:
    prompt: str
    started: float
    ended: float | None = None
    output: str | None = None
    error: str | None = None


def _prompt_text(messages: list[list[Any]]) -> str:
    batch = messages[0] if messages else []
    return str(batch[-1].content) if batch else ""


class CallLog(BaseCallbackHandler):
    """A callback handler that keeps one `Call` per chat-model run (thread-safe)."""

    def __init__(self) -> None:
        self._calls: dict[UUID, Call] = {}
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, llm) -> CallLog:
        """Start recording every call made through `llm`; returns the log."""
        log = cls()
        llm.callbacks = [*(llm.callbacks or []), log]
        return log

    def on_chat_model_start(self, serialized, messages, *, run_id: UUID, **kwargs) -> None:
        with self._lock:
            self._calls[run_id] = Call(prompt=_prompt_text(messages), started=time.monotonic())

    def on_llm_end(self, response, *, run_id: UUID, **kwargs) -> None:
        with self._lock:
            call = self._calls.get(run_id)
            if call is not None:
                call.ended = time.monotonic()
                generations = response.generations
                call.output = generations[0][0].text if generations and generations[0] else ""

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs) -> None:
        with self._lock:
            call = self._calls.get(run_id)
            if call is not None:
                call.ended = time.monotonic()
                call.error = f"{type(error).__name__}: {error}"

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return sorted(self._calls.values(), key=lambda c: c.started)

    def latest_for(self, prompts: list[str]) -> list[Call | None]:
        """The most recent finished call for each prompt (None where there was none)."""
        found: dict[str, Call] = {}
        for call in self.calls:
            if call.ended is not None and call.error is None:
                found[call.prompt] = call
        return [found.get(p) for p in prompts]


def max_overlap(calls: list[Call | None]) -> int:
    """The largest number of calls that were in flight at the same moment."""
    events = []
    for call in calls:
        if call is not None and call.ended is not None:
            events += [(call.started, 1), (call.ended, -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts on ties
        running += step
        peak = max(peak, running)
    return peak
