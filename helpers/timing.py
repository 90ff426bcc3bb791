"""Measure wall time: a Timer, side-by-side comparisons and concurrency sweeps."""

from __future__ import annotations

import functools
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

    def summary(self) -> str:
        (a, b), (ta, tb) = self.labels, self.medians_s
        runs = len(self.times_s[0])
        median = f" (median of {runs})" if runs > 1 else ""
        return f"{a}: {ta:.2f} s · {b}: {tb:.2f} s{median} → {b} is {self.ratio:.2f}x faster than {a}"

    def plot(self, ax=None, title: str | None = None):
        from .charts import bar_chart

        default = f"{self.labels[1]} is {self.ratio:.2f}x faster than {self.labels[0]}"
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


@dataclass
class Sweep:
    """Wall time for each value of a setting such as max_concurrency."""

    name: str
    values: list[Any] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)

    def best(self) -> tuple[Any, float]:
        i = min(range(len(self.times_s)), key=self.times_s.__getitem__)
        return self.values[i], self.times_s[i]

    def table(self) -> str:
        rows = [f"{self.name:>16} | wall time (s)"]
        rows += [f"{v!s:>16} | {t:.2f}" for v, t in zip(self.values, self.times_s, strict=True)]
        return "\n".join(rows)

    def plot(self, ax=None, title: str | None = None):
        from .charts import line_chart

        return line_chart(self.values, self.times_s, xlabel=self.name, ylabel="wall time (s)",
                          title=title or f"Wall time vs {self.name}", ax=ax)


def concurrency_sweep(run: Callable[[Any], Any], values: Iterable[Any] = range(1, 9),
                      name: str = "max_concurrency", plot: bool = True, verbose: bool = True,
                      clock: Callable[[], float] = time.perf_counter) -> Sweep:
    """Call run(value) for each value, time it, print a table and plot wall time vs value."""
    sweep = Sweep(name=name)
    for value in values:
        _, seconds = time_call(lambda v=value: run(v), clock)
        sweep.values.append(value)
        sweep.times_s.append(seconds)
    if verbose:
        print(sweep.table())
    if plot:
        from .charts import show

        show(sweep.plot())
    return sweep
