"""What the model server is doing, watched for a few seconds: requests running and tokens
generated, as the server itself reports them (llama.cpp, a NIM). Shows the server's side of a
stream your code stopped reading: still generating, or stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .server_metrics import read_metrics, requests_in_flight, server_json
from .settings import ConnectionSettings


def _busy_slot_tokens(settings: ConnectionSettings, timeout_s: float) -> dict | None:
    """{(slot id, task id): tokens decoded so far} for llama.cpp's busy slots (None: no /slots)."""
    slots = server_json(settings, "/slots", timeout_s)
    if not isinstance(slots, list):
        return None
    busy = {}
    for slot in slots:
        if slot.get("is_processing"):
            progress = slot.get("next_token") or []
            progress = progress if isinstance(progress, list) else [progress]
            busy[(slot.get("id"), slot.get("id_task"))] = sum(p.get("n_decoded", 0) for p in progress)
    return busy


@dataclass(frozen=True)
class Reading:
    """One look at the server: seconds since the watch began, requests running, tokens
    generated since the server started (None: the server does not report it)."""

    at_s: float
    requests_running: int | None
    tokens_generated: float | None


def read_activity(settings: ConnectionSettings, at_s: float = 0.0, timeout_s: float = 5.0) -> Reading:
    """Requests running and tokens generated so far, answers in progress included.

    A NIM counts every token as it is generated. llama.cpp adds an answer to its counter only
    when the answer ends, so the tokens of its busy slots are added; the slots are read before
    and after the counter, and the reading is repeated if an answer ended in between.
    """
    for _ in range(5):
        before = _busy_slot_tokens(settings, timeout_s)
        metrics = read_metrics(settings, timeout_s)
        if metrics is None:
            return Reading(at_s, None if before is None else len(before), None)
        counted = metrics.tokens_generated_total
        if before is None:  # no /slots: the metrics alone (a NIM)
            running = metrics.requests_running
            return Reading(at_s, None if running is None else int(running), counted)
        after = _busy_slot_tokens(settings, timeout_s) or {}
        if after.keys() == before.keys():
            break
    tokens = None if counted is None else counted + sum(after.values())
    return Reading(at_s, len(after), tokens)


@dataclass
class ServerWatch:
    """Readings of the server taken over a few seconds, and what they add up to."""

    label: str
    readings: list[Reading] = field(default_factory=list)

    @property
    def reported(self) -> bool:
        """Whether the server reports its activity at all (the hosted catalog does not)."""
        return any(r.tokens_generated is not None for r in self.readings)

    @property
    def seconds(self) -> float:
        return self.readings[-1].at_s if self.readings else 0.0

    @property
    def tokens_generated(self) -> float | None:
        """Tokens the server generated during the watch."""
        counts = [r.tokens_generated for r in self.readings if r.tokens_generated is not None]
        return max(counts) - counts[0] if counts else None

    @property
    def requests_running(self) -> int | None:
        """Requests the server was still working on at the end of the watch."""
        return self.readings[-1].requests_running if self.readings else None

    @property
    def generating(self) -> bool | None:
        """Whether the server was still generating in the second half of the watch (the first
        half gives it time to notice a closed connection). None: not reported."""
        if not self.reported:
            return None
        counted = [r for r in self.readings if r.tokens_generated is not None]
        halfway = [r for r in counted if r.at_s <= self.seconds / 2][-1]
        return counted[-1].tokens_generated > halfway.tokens_generated

    def tokens_since_start(self) -> list[float]:
        """Tokens generated since the first reading, per reading (for charts)."""
        first = next((r.tokens_generated for r in self.readings if r.tokens_generated is not None), 0)
        return [(r.tokens_generated or first) - first for r in self.readings]

    def summary(self) -> str:
        if not self.reported:
            return (f"{self.label}: this server does not report what it is doing "
                    "(the hosted catalog keeps that to itself)")
        verdict = "still generating" if self.generating else "idle"
        running = self.requests_running if self.requests_running is not None else "?"
        return (f"{self.label}: {self.tokens_generated:.0f} tokens generated in {self.seconds:.1f} s, "
                f"{running} request(s) running at the end → {verdict}")


def watch_server(settings: ConnectionSettings, seconds: float = 2.0, interval_s: float = 0.25,
                 label: str = "server", verbose: bool = True,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> ServerWatch:
    """Read the server's activity every `interval_s` for `seconds`; print a one-line summary.

    On a shared server (a workshop NIM) other people's requests count too.
    """
    watch = ServerWatch(label=label)
    start = clock()
    while True:
        now = clock() - start
        watch.readings.append(read_activity(settings, at_s=now))
        if not watch.reported or now >= seconds:
            break
        sleep(max(0.0, min(interval_s, seconds - (clock() - start))))
    if verbose:
        print(watch.summary())
    return watch


@dataclass(frozen=True)
class AfterStop:
    """The server after a client stopped its stream, as it reports itself (None: it does not
    report that)."""

    settled_s: float | None  # seconds until no request was running (None: never, in the watch)
    tokens_then: float | None  # tokens generated so far at that moment ...
    tokens_later: float | None  # ... and at the end of the watch
    in_flight: int | None  # requests running at the end of the watch
    seconds: float  # how long it was watched

    @property
    def reported(self) -> bool:
        return self.tokens_later is not None or self.in_flight is not None

    @property
    def tokens_generated(self) -> float | None:
        """Tokens the server generated after its requests had ended (0: it stopped)."""
        if self.tokens_then is None or self.tokens_later is None:
            return None
        return self.tokens_later - self.tokens_then

    @property
    def stopped(self) -> bool | None:
        if not self.reported:
            return None
        if self.in_flight is None:  # it counts tokens but does not say what it runs
            return self.tokens_generated == 0
        return self.settled_s is not None and self.in_flight == 0 and not self.tokens_generated


def server_after_stop(settings: ConnectionSettings, seconds: float = 1.5,
                      clock: Callable[[], float] = time.perf_counter,
                      sleep: Callable[[float], None] = time.sleep) -> AfterStop:
    """Wait (up to `seconds`) until the server runs no request, then check for the rest of
    the time that it generates no more tokens."""
    start = clock()
    reading = read_activity(settings)
    while reading.requests_running and clock() - start < seconds:
        sleep(0.05)
        reading = read_activity(settings)
    settled_s = clock() - start if reading.requests_running == 0 else None
    if reading.tokens_generated is None and reading.requests_running is None:
        return AfterStop(None, None, None, None, clock() - start)  # the hosted catalog
    sleep(max(0.5, seconds - (clock() - start)))  # a moment to go on, had it not stopped
    later = read_activity(settings)
    return AfterStop(settled_s, reading.tokens_generated, later.tokens_generated,
                     later.requests_running, clock() - start)


def watches_chart(watches: Sequence[ServerWatch], title: str | None = None, ax=None):
    """Tokens the server generated during each watch, one line per watch, on one time axis."""
    from .charts import _figure

    fig, ax = _figure(ax)
    for watch in watches:
        ax.plot([r.at_s for r in watch.readings], watch.tokens_since_start(), marker=".",
                label=watch.label)
    ax.set_xlabel("seconds since the watch began")
    ax.set_ylabel("tokens generated by the server")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title or "What the server did after the client stopped reading", fontsize=9)
    return fig


class RequestPeak:
    """The most requests the server ran at once while a block of code ran (None: not reported).

    >>> with RequestPeak(settings) as peak:
    ...     llm.batch(prompts, config={"max_concurrency": 12})
    >>> peak.value    # 6 on the offline server: the rest waited in its queue
    Reads llama.cpp's busy slots (or a NIM's running-requests gauge) every `interval_s`.
    """

    def __init__(self, settings: ConnectionSettings, interval_s: float = 0.1):
        self.settings = settings
        self.interval_s = interval_s
        self.value: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while True:
            running = requests_in_flight(self.settings)
            if running is None:
                return
            self.value = max(self.value or 0, running)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RequestPeak:
        self._thread = threading.Thread(target=self._poll, name="request-peak", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
