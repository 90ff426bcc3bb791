"""The one "poll until" loop: readiness checks, servers starting up, processes ending."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(check: Callable[[float], T | None], timeout_s: float, interval_s: float = 0.2,
               timeout_message: str | Callable[[float], str] = "gave up waiting",
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> T:
    """Call `check(waited_s)` every `interval_s` until it returns something other than None,
    and return that. `check` raises to stop early (a crashed process, a fatal answer); after
    `timeout_s` a TimeoutError carries `timeout_message` (or what it returns for the wait)."""
    start = clock()
    while True:
        waited = clock() - start
        outcome = check(waited)
        if outcome is not None:
            return outcome
        if clock() - start >= timeout_s:
            waited = clock() - start
            raise TimeoutError(timeout_message(waited) if callable(timeout_message)
                               else timeout_message)
        sleep(interval_s)
