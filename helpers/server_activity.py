"""What the model server is doing, watched for a moment: tokens generated and requests running,
as the server itself reports them (llama.cpp, a NIM). Shows the server's side of a stream your
code stopped reading: still generating, or stopped.

The verdict comes from the tokens-generated counter standing still: it moves only when the
engine steps. The running-requests gauge is a hint only: vLLM (inside a NIM) refreshes it on its
next engine step, so after an abort it can stay at 1 with nothing running (vllm-project/vllm
issues 22545 and 29928). Readings from different server processes (replicas behind one
address) or with other users' requests in them get no verdict, but one sentence saying why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from .server_metrics import read_metrics, requests_in_flight, server_json
from .settings import ConnectionSettings

GAUGE_LAGS = ("that running-requests gauge lags (vLLM inside a NIM updates it only on its next "
              "engine step)")


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
    generated since the server started (None: the server does not report it), and which
    server process answered (None: it does not say)."""

    at_s: float
    requests_running: int | None
    tokens_generated: float | None
    instance: float | None = None


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
            return Reading(at_s, None if running is None else int(running), counted,
                           metrics.instance)
        after = _busy_slot_tokens(settings, timeout_s) or {}
        if after.keys() == before.keys():
            break
    tokens = None if counted is None else counted + sum(after.values())
    return Reading(at_s, len(after), tokens, metrics.instance)


def _counted(readings: Sequence[Reading]) -> list[Reading]:
    return [r for r in readings if r.tokens_generated is not None]


def different_servers(readings: Sequence[Reading]) -> str | None:
    """Why these readings cannot all come from one server process (None: nothing says so)."""
    instances = {r.instance for r in readings if r.instance is not None}
    if len(instances) > 1:
        return (f"the readings came from {len(instances)} different server processes (each "
                "reports its own start time), as when several replicas share one address")
    counts = [r.tokens_generated for r in _counted(readings)]
    drop = next(((a, b) for a, b in pairwise(counts) if b < a), None)
    if drop:
        return (f"the token counter went backwards ({drop[0]:.0f} → {drop[1]:.0f}), so the "
                "readings came from different servers (replicas behind one address, or a restart)")
    return None


def others_counted(readings: Sequence[Reading], ours: int | None, busy_before: bool | None,
                   tokens: float, seconds: float) -> str | None:
    """Why a moving counter may be other users' work (None: it can all be yours)."""
    moved = f"its token counter moved {tokens:.0f} in {seconds:.1f} s"
    if busy_before:
        return (f"{moved}, but it was already generating before your request, so other users' "
                "requests count in it too and it cannot tell yours from theirs")
    running = max((r.requests_running for r in readings if r.requests_running is not None),
                  default=None)
    if ours is not None and running is not None and running > ours:
        return (f"{moved} with {running} requests running, more than your {ours}, so other users' "
                "requests count in it too and it cannot tell yours from theirs")
    return None


@dataclass
class ServerWatch:
    """Readings of the server taken over a few seconds, and what they add up to.

    `ours`: how many of the running requests can be yours (a moving counter with more running
    is other users' work too); `busy_before`: whether the server was generating before your
    request started (`server_busy`), None if unknown.
    """

    label: str
    readings: list[Reading] = field(default_factory=list)
    ours: int | None = 1
    busy_before: bool | None = None

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
        counts = [r.tokens_generated for r in _counted(self.readings)]
        return max(counts) - counts[0] if counts else None

    @property
    def requests_running(self) -> int | None:
        """Requests the server listed as running at the end of the watch (a hint: it can lag)."""
        return self.readings[-1].requests_running if self.readings else None

    def _second_half(self) -> list[Reading]:
        """The counted readings from the last one in the first half on (the first half gives
        the server time to notice a closed connection)."""
        counted = _counted(self.readings)
        halfway = max((i for i, r in enumerate(counted) if r.at_s <= self.seconds / 2), default=0)
        return counted[halfway:]

    @property
    def still_from(self) -> float | None:
        """Seconds into the watch from which the token counter stood still (None: not reported)."""
        counted = _counted(self.readings)
        if not counted:
            return None
        since = counted[-1]
        for reading in reversed(counted):
            if reading.tokens_generated != counted[-1].tokens_generated:
                break
            since = reading
        return since.at_s

    def _moved_late(self) -> bool:
        late = self._second_half()
        return late[-1].tokens_generated > late[0].tokens_generated

    @property
    def caveat(self) -> str | None:
        """Why these readings allow no verdict, as one clause (None: they allow one)."""
        if not self.reported:
            return None
        mixed = different_servers(self.readings)
        if mixed or not self._moved_late():
            return mixed
        late = self._second_half()
        return others_counted(late, self.ours, self.busy_before, self.tokens_generated, self.seconds)

    @property
    def generating(self) -> bool | None:
        """Whether the server's token counter still moved in the second half of the watch.
        None: not reported, or readings from different servers."""
        if not self.reported or different_servers(self.readings):
            return None
        return self._moved_late()

    def tokens_since_start(self) -> list[float]:
        """Tokens generated since the first reading, per reading (for charts)."""
        first = next((r.tokens_generated for r in self.readings if r.tokens_generated is not None), 0)
        return [(r.tokens_generated or first) - first for r in self.readings]

    def summary(self) -> str:
        """One line (a second one when the running gauge lags), or one sentence why no verdict."""
        if not self.reported:
            return (f"{self.label}: this server does not report what it is doing "
                    "(the hosted catalog keeps that to itself)")
        if self.caveat:
            return f"{self.label}: no verdict: {self.caveat}."
        verdict = "still generating" if self.generating else "idle"
        running = self.requests_running if self.requests_running is not None else "?"
        line = (f"{self.label}: {self.tokens_generated:.0f} tokens generated in {self.seconds:.1f} s, "
                f"{running} request(s) running at the end → {verdict}")
        if not self.generating and self.requests_running:
            line += (f"\n  ({self.requests_running} request(s) listed as running, yet no token "
                     f"generated: {GAUGE_LAGS})")
        return line


def watch_server(settings: ConnectionSettings, seconds: float = 2.0, interval_s: float = 0.25,
                 label: str = "server", verbose: bool = True,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep, ours: int | None = 1,
                 busy_before: bool | None = None) -> ServerWatch:
    """Read the server's activity every `interval_s` for `seconds`; print a one-line summary.

    On a shared server (a workshop NIM) other people's requests count too: with more requests
    running than `ours`, or `busy_before` (from `server_busy` before your request), a moving
    counter gets no verdict. Readings from different replicas get none either.
    """
    watch = ServerWatch(label=label, ours=ours, busy_before=busy_before)
    start = clock()
    while True:
        now = clock() - start
        watch.readings.append(read_activity(settings, at_s=now))
        if not _reports_anything(watch.readings) or now >= seconds:
            break
        sleep(max(0.0, min(interval_s, seconds - (clock() - start))))
    if verbose:
        print(watch.summary())
    return watch


def _reports_anything(readings: Sequence[Reading]) -> bool:
    return any(r.tokens_generated is not None or r.requests_running is not None for r in readings)


def server_busy(settings: ConnectionSettings, window_s: float = 0.25,
                sleep: Callable[[float], None] = time.sleep) -> bool | None:
    """Whether the server generates right now, before you send anything: its token counter
    moves over `window_s` (on a shared server: other users' work). None: it does not say."""
    first = read_activity(settings)
    if first.tokens_generated is None:
        return None
    sleep(window_s)
    later = read_activity(settings)
    if later.tokens_generated is None or different_servers([first, later]):
        return None
    return later.tokens_generated > first.tokens_generated


@dataclass(frozen=True)
class AfterStop:
    """The server after a client stopped its stream, as it reports itself (None: it does not
    report that)."""

    settled_s: float | None  # seconds after Stop from which the token counter stood still
    tokens_then: float | None  # the counter then (or at the first reading, if it never did) ...
    tokens_later: float | None  # ... and at the end of the watch
    in_flight: int | None  # requests listed as running at the end (a hint: the gauge can lag)
    seconds: float  # how long it was watched
    caveat: str | None = None  # why there is no verdict (different servers, other users)

    @classmethod
    def from_watch(cls, watch: ServerWatch) -> AfterStop:
        counted = _counted(watch.readings)
        if not counted:
            return cls(None, None, None, watch.requests_running, watch.seconds)
        settled = None if watch.generating else watch.still_from
        then = next((r.tokens_generated for r in counted if r.at_s == settled),
                    counted[0].tokens_generated)
        return cls(settled, then, counted[-1].tokens_generated, watch.requests_running,
                   watch.seconds, watch.caveat)

    @property
    def reported(self) -> bool:
        return self.tokens_later is not None or self.in_flight is not None

    @property
    def tokens_generated(self) -> float | None:
        """Tokens the server generated once its counter stood still (0), or during the whole
        watch when it never did."""
        if self.tokens_then is None or self.tokens_later is None:
            return None
        return self.tokens_later - self.tokens_then

    @property
    def stopped(self) -> bool | None:
        """Whether the server stopped generating. None: not reported, or no verdict."""
        if not self.reported or self.caveat:
            return None
        if self.tokens_later is None:  # no counter: its running requests alone
            return self.in_flight == 0
        return self.settled_s is not None

    def summary(self) -> str:
        """One line: the verdict and the figures it rests on."""
        if not self.reported:
            return "server: does not report what it is doing (the hosted catalog keeps that to itself)"
        if self.caveat:
            return f"server: no verdict after Stop: {self.caveat}"
        verdict = "server stopped generating" if self.stopped else "server STILL GENERATING"
        if self.tokens_later is None:
            return f"{verdict}: {self.in_flight} request(s) running {self.seconds:.1f} s after Stop"
        if not self.stopped:
            running = "" if self.in_flight is None else f", {self.in_flight} request(s) running"
            return (f"{verdict}: {self.tokens_generated:.0f} more tokens in the {self.seconds:.1f} s "
                    f"after Stop{running}")
        line = (f"{verdict}: its token counter stood still from {self.settled_s:.1f} s after Stop "
                f"({self.tokens_generated:.0f} more tokens in {self.seconds - self.settled_s:.1f} s)")
        if self.in_flight:
            return f"{line}, though it still lists {self.in_flight} request(s) running: {GAUGE_LAGS}"
        return line + (", no request running" if self.in_flight == 0 else "")


def server_after_stop(settings: ConnectionSettings, seconds: float = 1.5,
                      clock: Callable[[], float] = time.perf_counter,
                      sleep: Callable[[float], None] = time.sleep, ours: int | None = 1,
                      busy_before: bool | None = None) -> AfterStop:
    """Watch the server for `seconds` after a stream was stopped (a reading every 0.1 s): it
    stopped if its token counter stood still through the second half, whatever its
    running-requests gauge says. `ours` and `busy_before` as for `watch_server`."""
    watch = watch_server(settings, seconds, interval_s=0.1, label="after Stop", verbose=False,
                         clock=clock, sleep=sleep, ours=ours, busy_before=busy_before)
    return AfterStop.from_watch(watch)


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
