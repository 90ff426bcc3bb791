"""Two clients of one SSE endpoint on one clock: what a second client sees while the first one's
answer streams (notebook 10 measures a blocking endpoint and a bridged one with it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .latency import text_arrivals
from .sse import iter_sse_text
from .streaming import StreamRecorder, StreamResult

# ── two clients of one endpoint, on one clock ──────────────────────────────────────────────

@dataclass
class TwoClients:
    """Two clients of one SSE endpoint, on one clock: `first` asked at 0, `second` asked
    `second_sent_s` later, once the first answer had begun."""

    first: StreamResult
    second: StreamResult
    second_sent_s: float

    @property
    def results(self) -> dict[str, StreamResult]:
        """For `timelines_chart`: both streams, arrival times since the first request."""
        return {"client A": self.first, "client B": self.second}

    @property
    def first_last_token_s(self) -> float:
        """When A's last piece of text arrived."""
        texted = text_arrivals(self.first)
        return texted[-1] if texted else self.first.total_s

    @property
    def first_remaining_s(self) -> float:
        """How long A's answer still streamed after B asked."""
        return max(0.0, self.first_last_token_s - self.second_sent_s)

    @property
    def second_ttft_s(self) -> float | None:
        """B's own time to first token: from its request to its first text."""
        if self.second.ttft_s is None:
            return None
        return self.second.ttft_s - self.second_sent_s

    def summary(self) -> str:
        wait = self.second_ttft_s
        shown = f"{wait:.2f} s" if wait is not None else "never"
        return (f"A streamed {len(self.first.text)} characters until {self.first_last_token_s:.2f} s; "
                f"B asked at {self.second_sent_s:.2f} s (A still had {self.first_remaining_s:.2f} s to go) "
                f"and waited {shown} for its first token")


def two_clients(url: str, first: dict, second: dict, timeout_s: float = 120.0,
                clock: Callable[[], float] = time.perf_counter) -> TwoClients:
    """Client A posts `first` to the SSE endpoint `url`; as soon as A's first text arrives,
    client B posts `second`. Both read in threads of their own; every arrival is timed from
    A's request. Returns when both answers are complete."""
    start = clock()
    recorders = {key: StreamRecorder(clock=clock, started_at=start) for key in ("A", "B")}
    results = {key: recorder.result for key, recorder in recorders.items()}
    a_began = threading.Event()
    sent = {}

    def began(_recorder: StreamRecorder, text: str) -> None:
        if text:
            a_began.set()

    def read(key: str, payload: dict) -> None:
        try:
            recorders[key].consume(lambda: iter_sse_text(url, payload, timeout_s=timeout_s),
                                   on_chunk=began)
        finally:
            a_began.set()  # B must not wait for an A that failed

    a = threading.Thread(target=read, args=("A", first), name="client-A")
    a.start()
    a_began.wait(timeout_s)
    sent["B"] = clock() - start
    b = threading.Thread(target=read, args=("B", second), name="client-B")
    b.start()
    a.join(timeout_s)
    b.join(timeout_s)
    for key in ("A", "B"):
        if results[key].error is not None:
            raise RuntimeError(f"client {key} failed: {results[key].error}") from results[key].error
    return TwoClients(results["A"], results["B"], sent["B"])


def two_clients_chart(runs: dict[str, TwoClients], title: str | None = None):
    """One panel per run, side by side on one time scale: characters each client received,
    and when B asked."""
    from matplotlib.figure import Figure

    from .async_streams import timelines_chart

    fig = Figure(figsize=(5 * len(runs), 3.2), layout="constrained")
    axes = fig.subplots(1, len(runs), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (label, run) in zip(axes, runs.items(), strict=True):
        timelines_chart(run.results, title=label, ax=ax)
        ax.axvline(run.second_sent_s, color="#5a5a5a", ls=":", lw=1, label="B asks")
        ax.legend(loc="upper left", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_two_clients(runs: dict[str, TwoClients], title: str | None = None):
    """Show (and return) `two_clients_chart`: one panel per run, on one time scale."""
    from .charts import show

    return show(two_clients_chart(runs, title=title))
