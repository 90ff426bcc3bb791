"""Measure wall time: a Timer, side-by-side comparisons and concurrency sweeps."""

from __future__ import annotations

import contextlib
import functools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class Timer:
    """Wall-clock timer, as a context manager or a decorator.

    >>> with Timer("batch") as t:
    ...     ...
    >>> t.elapsed_s
    As a decorator every call is timed and kept in `.laps_s`.
    """

    def __init__(self, label: str | None = None, verbose: bool = True,
                 clock: Callable[[], float] = time.perf_counter):
        self.label = label
        self.verbose = verbose
        self.clock = clock
        self.laps_s: list[float] = []
        self._start: float | None = None

    @property
    def elapsed_s(self) -> float | None:
        """The last measured time (None before the first one finishes)."""
        return self.laps_s[-1] if self.laps_s else None

    def __enter__(self) -> Timer:
        self._start = self.clock()
        return self

    def __exit__(self, *exc_info) -> None:
        self.laps_s.append(self.clock() - self._start)
        if self.verbose:
            print(f"⏱ {self.label or 'elapsed'}: {self.elapsed_s:.3f} s")

    def __call__(self, fn: Callable) -> Callable:
        label = self.label or fn.__name__
        self.label = label

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        timed.timer = self
        return timed


def time_call(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter):
    """Run fn() once; return (result, seconds)."""
    start = clock()
    value = fn()
    return value, clock() - start


@dataclass
class Comparison:
    """Two ways of doing the same work, timed side by side."""

    labels: tuple[str, str]
    times_s: tuple[list[float], list[float]]
    results: tuple[Any, Any] = (None, None)

    @property
    def medians_s(self) -> tuple[float, float]:
        return statistics.median(self.times_s[0]), statistics.median(self.times_s[1])

    @property
    def ratio(self) -> float:
        """How many times faster the second is than the first (first / second)."""
        first, second = self.medians_s
        return first / second if second > 0 else float("inf")

    def verdict(self) -> str:
        """'<second> is N.NNx faster than <first>', or slower, as the medians say."""
        (a, b), ratio = self.labels, self.ratio
        if ratio >= 1:
            return f"{b} is {ratio:.2f}x faster than {a}"
        return f"{b} is {1 / ratio:.2f}x slower than {a}" if ratio > 0 else f"{b} took no time"

    def summary(self) -> str:
        (a, b), (ta, tb) = self.labels, self.medians_s
        runs = len(self.times_s[0])
        median = f" (median of {runs})" if runs > 1 else ""
        return f"{a}: {ta:.2f} s · {b}: {tb:.2f} s{median} → {self.verdict()}"

    def plot(self, ax=None, title: str | None = None):
        from .charts import bar_chart

        default = self.verdict()
        return bar_chart(self.labels, self.medians_s, title=title or default, ax=ax)


def compare(first: Callable[[], Any], second: Callable[[], Any],
            labels: Sequence[str] = ("first", "second"), repeats: int = 1,
            plot: bool = True, verbose: bool = True,
            clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Time `first` and `second` side by side (interleaved when repeated) and show a bar chart."""
    times: tuple[list[float], list[float]] = ([], [])
    results = [None, None]
    for _ in range(max(1, repeats)):
        for i, fn in enumerate((first, second)):
            results[i], seconds = time_call(fn, clock)
            times[i].append(seconds)
    comparison = Comparison(labels=(labels[0], labels[1]), times_s=times,
                            results=(results[0], results[1]))
    if verbose:
        print(comparison.summary())
    if plot:
        from .charts import show

        show(comparison.plot())
    return comparison


@contextlib.contextmanager
def _peak_requests(server: Any):
    """A RequestPeak on `server` while the block runs, or None without a server."""
    if server is None:
        yield None
        return
    from .server_activity import RequestPeak

    with RequestPeak(server) as peak:
        yield peak


def failed_requests(result: Any) -> int:
    """How many of a run's results are exceptions: a batch called with `return_exceptions=True`
    returns each failed request's exception in its place."""
    if isinstance(result, (list, tuple)):
        return sum(isinstance(item, BaseException) for item in result)
    return 0


@dataclass
class Sweep:
    """Wall time for each value of a setting such as max_concurrency: every run, and medians.

    A run in which a request failed (a batch with `return_exceptions=True` returned an
    exception) is counted in `failed` and left out of the times: a refused request is no
    measure of speed. A value with no run left has no time (NaN).
    """

    name: str
    values: list[Any] = field(default_factory=list)
    runs_s: list[list[float]] = field(default_factory=list)  # the timed runs of each value
    mark: tuple[Any, str] | None = None  # a value to mark on the chart, and why
    peaks: list[int | None] = field(default_factory=list)  # most requests the server ran at once
    failed: list[list[int]] = field(default_factory=list)  # failed requests in each run of a value
    slots: int | None = None  # the server's slots, where it reports them (llama.cpp's /props)

    @property
    def times_s(self) -> list[float]:
        """The median wall time of each value (NaN where every run had a failed request)."""
        return [statistics.median(runs) if runs else math.nan for runs in self.runs_s]

    @property
    def failed_total(self) -> int:
        return sum(sum(runs) for runs in self.failed)

    def time_at(self, value: Any) -> float:
        return self.times_s[self.values.index(value)]

    def _timed(self) -> list[tuple[Any, float]]:
        return [(v, t) for v, t in zip(self.values, self.times_s, strict=True) if not math.isnan(t)]

    def best(self) -> tuple[Any, float] | None:
        """The fastest value and its time (None: no value was timed)."""
        return min(self._timed(), key=lambda vt: vt[1], default=None)

    def plateau_start(self, within: float = 0.10) -> Any:
        """The first value whose median is within `within` (10 %) of the best: where more
        stops paying. None: fewer than two values were timed, so there is nothing to compare."""
        timed = self._timed()
        if len(timed) < 2:
            return None
        best = min(t for _, t in timed)
        return next(v for v, t in timed if t <= best * (1 + within))

    def table(self) -> str:
        runs = max((len(f) for f in self.failed), default=0) or (
            len(self.runs_s[0]) if self.runs_s else 0)
        median = f"median of {runs}" if runs > 1 else "one run"
        times = self.times_s
        first = next((t for t in times if not math.isnan(t)), math.nan)
        peaks = self.peaks if any(p is not None for p in self.peaks) else []
        failed = [sum(f) for f in self.failed] if self.failed_total else []
        rows = [f"{self.name:>16} | wall time (s), {median} | speed-up vs {self.values[0]}"
                + (" | the server ran at once" if peaks else "")
                + (" | failed requests" if failed else "")]
        for i, (v, t) in enumerate(zip(self.values, times, strict=True)):
            shown = "—" if math.isnan(t) else f"{t:.2f}"
            speed_up = "—" if math.isnan(t) or math.isnan(first) else f"{first / t:.2f}x"
            peak = f" | {peaks[i] if peaks[i] is not None else '?'}" if peaks else ""
            fails = f" | {failed[i]}" if failed else ""
            rows.append(f"{v!s:>16} | {shown} | {speed_up}{peak}{fails}")
        if failed:
            left_out = sum(1 for f in self.failed for n in f if n)
            rows.append(f"{self.failed_total} request(s) failed: counted as failed, and the "
                        f"{left_out} run(s) they were in are left out of the wall times "
                        "(a refused request is no measure of speed)")
        return "\n".join(rows)

    def plot(self, ax=None, title: str | None = None):
        from .charts import line_chart

        fig = line_chart(self.values, self.times_s, xlabel=self.name, ylabel="wall time (s, median)",
                         title=title or f"Wall time vs {self.name}", ax=ax)
        if self.mark is not None:
            axes = fig.axes[0] if ax is None else ax
            axes.axvline(self.mark[0], color="#5a5a5a", ls="--", label=self.mark[1])
            axes.legend(loc="upper right", fontsize=8)
        return fig


def concurrency_sweep(run: Callable[[Any], Any], values: Iterable[Any] = range(1, 9),
                      name: str = "max_concurrency", repeats: int = 1, warmup: bool = False,
                      mark: tuple[Any, str] | None = None, server: Any = None, plot: bool = True,
                      verbose: bool = True, clock: Callable[[], float] = time.perf_counter) -> Sweep:
    """Call run(value) for each value, time it, print a table and plot wall time vs value.

    With `warmup`, one untimed run (of the last value) comes first; with `repeats`, the values
    are timed round after round (so a busy moment hits all of them alike) and the medians are
    shown. `mark=(value, label)` draws a line at that value. With `server` (connection
    settings), the table also shows the most requests that server ran at once during each
    value's runs, and the server's slot count, where it reports one, is kept in `slots` and
    marked on the chart (unless `mark` says otherwise).
    When run(value) returns a list (a batch with `return_exceptions=True`), its exceptions are
    counted as failed requests, and a run with any is left out of the times.
    """
    sweep = Sweep(name=name, values=list(values), mark=mark)
    sweep.runs_s = [[] for _ in sweep.values]
    sweep.peaks = [None for _ in sweep.values]
    sweep.failed = [[] for _ in sweep.values]
    if server is not None:
        from .server_metrics import server_slots

        sweep.slots = server_slots(server)
        if mark is None and sweep.slots:
            sweep.mark = (sweep.slots, f"{sweep.slots} server slots")
    if warmup and sweep.values:
        run(sweep.values[-1])
    for _ in range(max(1, repeats)):
        for i, value in enumerate(sweep.values):
            with _peak_requests(server) as peak:
                result, seconds = time_call(lambda v=value: run(v), clock)
            failed = failed_requests(result)
            sweep.failed[i].append(failed)
            if not failed:
                sweep.runs_s[i].append(seconds)
            if peak is not None and peak.value is not None:
                sweep.peaks[i] = max(sweep.peaks[i] or 0, peak.value)
    if verbose:
        print(sweep.table())
    if plot:
        from .charts import show

        show(sweep.plot())
    return sweep
