"""Latency and throughput of LLM streams: time to first token, inter-token latency, tokens per
second and percentiles of a run of many streams (notebook 9 writes the load loop itself), the
prompt side of one request (cached tokens), and a published benchmark to compare with.

Definitions used here:
- TTFT: from sending the request to the first chunk that carries text;
- ITL (inter-token latency): the gaps between consecutive chunks that carry text, pooled over
  the streams of a run. NVIDIA's NIM benchmarking guide defines ITL per request instead, as
  (end-to-end latency - TTFT) / (output tokens - 1), averaged over requests; the two agree when
  every chunk carries one token and the requests are about equally long;
- per-request tokens/s: a request's output tokens over its whole duration;
- aggregate tokens/s: all answered requests' output tokens over the run's wall time;
- requests/s: answered requests over the run's wall time. Failed requests are counted as
  failed and left out of every latency.
"""

from __future__ import annotations

import asyncio
import csv
import statistics
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from .streaming import StreamRecorder, StreamResult

REFERENCE_CSV = Path(__file__).with_name("data") / "nim_llama31_8b_benchmark.csv"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated linearly between ranks as numpy does; None if empty."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(list(values), q))


def text_arrivals(result: StreamResult) -> list[float]:
    """Arrival times of the chunks that carried text (role, finish and usage chunks left out)."""
    return [t for t, text in zip(result.arrivals_s, result.chunk_texts, strict=True) if text]


def inter_token_latencies(result: StreamResult) -> list[float]:
    """Gaps between consecutive text chunks of one stream, in seconds."""
    return [later - earlier for earlier, later in pairwise(text_arrivals(result))]


def output_tokens(result: StreamResult) -> int:
    """Output tokens from the server's usage data, else the number of text chunks."""
    return result.output_tokens if result.output_tokens is not None else result.content_chunks


@dataclass
class LoadRun:
    """Many streams sent at a fixed concurrency, each with its own clock from when it was sent."""

    concurrency: int
    results: list[StreamResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def answered(self) -> list[StreamResult]:
        """Streams that completed and delivered text."""
        return [r for r in self.results if r.completed and r.ttft_s is not None]

    @property
    def ttfts_s(self) -> list[float]:
        return [r.ttft_s for r in self.answered]

    @property
    def itls_s(self) -> list[float]:
        """Every inter-token gap of every answered stream, pooled."""
        return [gap for r in self.answered for gap in inter_token_latencies(r)]

    @property
    def ttft_p50_s(self) -> float | None:
        return percentile(self.ttfts_s, 50)

    @property
    def ttft_p95_s(self) -> float | None:
        return percentile(self.ttfts_s, 95)

    @property
    def itl_mean_s(self) -> float | None:
        gaps = self.itls_s
        return statistics.fmean(gaps) if gaps else None

    @property
    def itl_p95_s(self) -> float | None:
        return percentile(self.itls_s, 95)

    @property
    def output_tokens(self) -> int:
        return sum(output_tokens(r) for r in self.answered)

    @property
    def aggregate_tokens_per_s(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return len(self.answered) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def per_request_tokens_per_s(self) -> float | None:
        """The median request's own rate: output tokens over its duration."""
        rates = [output_tokens(r) / r.total_s for r in self.answered if r.total_s > 0]
        return statistics.median(rates) if rates else None

    def row(self) -> dict[str, Any]:
        """One table row (milliseconds for latencies)."""
        def ms(seconds):
            return round(seconds * 1000, 1) if seconds is not None else None

        per_request = self.per_request_tokens_per_s
        return {"concurrency": self.concurrency, "requests": len(self.results),
                "answered": len(self.answered), "failed": len(self.results) - len(self.answered),
                "wall_s": round(self.wall_s, 2),
                "ttft_p50_ms": ms(self.ttft_p50_s), "ttft_p95_ms": ms(self.ttft_p95_s),
                "itl_mean_ms": ms(self.itl_mean_s), "itl_p95_ms": ms(self.itl_p95_s),
                "tokens_per_s_per_request": round(per_request, 1) if per_request else None,
                "aggregate_tokens_per_s": round(self.aggregate_tokens_per_s, 1),
                "requests_per_s": round(self.requests_per_s, 2)}


async def record_stream(stream: AsyncIterable[Any] | Callable[[], AsyncIterable[Any]],
                        clock: Callable[[], float] = time.perf_counter) -> StreamResult:
    """Consume an async stream (e.g. `llm.astream(prompt)`), timing every chunk from now.

    A failing stream is returned with `.error` set and what arrived before it kept.
    """
    return await StreamRecorder(clock=clock).aconsume(stream)


async def run_load(open_stream: Callable[[str], AsyncIterable[Any]], prompts: Iterable[str],
                   concurrency: int, clock: Callable[[], float] = time.perf_counter) -> LoadRun:
    """Send every prompt, at most `concurrency` in flight (a new one starts as one finishes).
    Notebook 9 writes this loop itself; this is the same, reusable.

    `open_stream(prompt)` returns the stream, e.g. `lambda p: llm.astream(p)`. Each stream's
    clock starts when it is sent, so TTFT includes queueing in the server, not in this client.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1 (got {concurrency}): with none in flight "
                         "nothing would ever be sent")
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> StreamResult:
        async with gate:
            return await record_stream(lambda: open_stream(prompt), clock)

    start = clock()
    results = await asyncio.gather(*(one(p) for p in prompts))
    return LoadRun(concurrency=concurrency, results=list(results), wall_s=clock() - start)


def _field(data: Any, name: str) -> Any:
    return data.get(name) if isinstance(data, dict) else getattr(data, name, None)


def cached_tokens(usage: Any) -> int | None:
    """Prompt tokens the server read from its prefix cache, from OpenAI-style usage data
    (`usage.prompt_tokens_details.cached_tokens`); None when the server does not report it."""
    return _field(_field(usage, "prompt_tokens_details"), "cached_tokens")


@dataclass
class PromptTiming:
    """One streamed request seen from its prompt side: tokens read, tokens the server's prefix
    cache supplied, and the stream's timings."""

    prompt_tokens: int | None
    cached_tokens: int | None
    result: StreamResult

    @property
    def ttft_s(self) -> float | None:
        return self.result.ttft_s

    @property
    def itl_mean_s(self) -> float | None:
        gaps = inter_token_latencies(self.result)
        return statistics.fmean(gaps) if gaps else None


def measure_prompt(client: Any, model: str, messages: list[dict], max_tokens: int = 8,
                   clock: Callable[[], float] = time.perf_counter,
                   raise_errors: bool = True) -> PromptTiming:
    """Stream one chat completion with the `openai` client and keep its usage data, which
    carries `prompt_tokens_details.cached_tokens` (LangChain's usage_metadata drops it).
    A failed request raises its error once the stream is closed (`raise_errors=False`: kept
    on `.result`, with what arrived before it)."""
    result = StreamRecorder(clock=clock).consume(lambda: client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_completion_tokens=max_tokens,
        stream=True, stream_options={"include_usage": True}))
    if raise_errors and result.error is not None:
        raise result.error
    usage = result.usage
    return PromptTiming(prompt_tokens=_field(usage, "prompt_tokens"),
                        cached_tokens=cached_tokens(usage), result=result)


@dataclass(frozen=True)
class ReferencePoint:
    concurrency: int
    ttft_ms: float
    itl_ms: float
    tokens_per_s: float


@dataclass(frozen=True)
class Reference:
    """A published benchmark: its points by concurrency, and where it comes from."""

    points: list[ReferencePoint]
    source: str


def load_reference(path: Path = REFERENCE_CSV) -> Reference:
    """A published benchmark table (CSV; the lines starting with # say where it comes from)."""
    with path.open() as handle:
        lines = handle.read().splitlines()
    rows = csv.DictReader(line for line in lines if not line.startswith("#"))
    points = [ReferencePoint(int(r["concurrency"]), float(r["ttft_ms"]), float(r["itl_ms"]),
                             float(r["tokens_per_s"])) for r in rows]
    source = "\n".join(line[1:].strip() for line in lines if line.startswith("#"))
    return Reference(points, source)


def sweep_chart(runs: Sequence[LoadRun], slots: int | None = None, title: str | None = None, ax=None):
    """Aggregate tokens/s (left axis) and TTFT p50/p95 and mean ITL (right axis) vs concurrency
    (a log axis, labelled at the levels)."""
    from .charts import _figure

    fig, ax = _figure(ax, size=(7, 3.6))
    levels = [run.concurrency for run in runs]
    ax.plot(levels, [run.aggregate_tokens_per_s for run in runs], marker="o", color="#76b900",
            lw=2.5, label="aggregate tokens/s")
    # a log axis: levels such as 1, 5, 25 ... 200 would crowd together at the left of a linear one
    ax.set_xscale("log")
    ax.set_xlabel("concurrent requests (log scale)")
    ax.set_ylabel("aggregate output tokens/s", color="#4a7a00")
    ax.set_ylim(bottom=0)
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.set_xticks([], minor=True)
    ax.grid(alpha=0.3)
    latency = ax.twinx()

    def ms(values):
        return [v * 1000 if v is not None else float("nan") for v in values]

    latency.plot(levels, ms([r.ttft_p50_s for r in runs]), marker="s", color="#1f77b4",
                 label="TTFT p50")
    latency.plot(levels, ms([r.ttft_p95_s for r in runs]), marker="s", ls="--", color="#1f77b4",
                 label="TTFT p95")
    latency.plot(levels, ms([r.itl_mean_s for r in runs]), marker="^", color="#ff7f0e",
                 label="mean ITL")
    latency.set_yscale("log")  # TTFT under queueing and ITL differ by orders of magnitude
    latency.set_ylabel("latency (ms, log scale)", color="#1f77b4")
    if slots:
        ax.axvline(slots, color="#5a5a5a", ls=":", label=f"server slots ({slots})")
    lines = ax.get_legend_handles_labels()
    more = latency.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=7)
    ax.set_title(title or "Aggregate throughput and latency by concurrency", fontsize=9)
    return fig


def plot_sweep(runs: Sequence[LoadRun], slots: int | None = None, title: str | None = None):
    """Show (and return) `sweep_chart`: aggregate tokens/s and TTFT/ITL by concurrency."""
    from .charts import show

    return show(sweep_chart(runs, slots, title))
