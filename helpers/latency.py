"""Latency and throughput of LLM streams: time to first token, inter-token latency, tokens per
second, percentiles, and runs of many streams at a fixed concurrency (a load sweep).

Definitions (the same as NVIDIA's NIM benchmarking guide):
- TTFT: from sending the request to the first chunk that carries text;
- ITL (inter-token latency): the gaps between consecutive chunks that carry text;
- per-request tokens/s: a request's output tokens over its whole duration;
- aggregate tokens/s: all requests' output tokens over the run's wall time;
- requests/s: completed requests over the run's wall time.
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

from .friendly_errors import explain
from .streaming import StreamResult

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
                "answered": len(self.answered), "wall_s": round(self.wall_s, 2),
                "ttft_p50_ms": ms(self.ttft_p50_s), "ttft_p95_ms": ms(self.ttft_p95_s),
                "itl_mean_ms": ms(self.itl_mean_s), "itl_p95_ms": ms(self.itl_p95_s),
                "tokens_per_s_per_request": round(per_request, 1) if per_request else None,
                "aggregate_tokens_per_s": round(self.aggregate_tokens_per_s, 1),
                "requests_per_s": round(self.requests_per_s, 2)}


async def record_stream(stream: AsyncIterable[Any],
                        clock: Callable[[], float] = time.perf_counter) -> StreamResult:
    """Consume an async stream (e.g. `llm.astream(prompt)`), timing every chunk from now.

    A failing stream is returned with `.error` set and what arrived before it kept.
    """
    result = StreamResult()
    start = clock()
    try:
        async for chunk in stream:
            result.text += result.record(chunk, clock() - start)
    except Exception as exc:  # noqa: BLE001 - one failed request must not end the run
        result.error = exc
        result.error_message = explain(exc)
    result.total_s = clock() - start
    return result


async def run_load(open_stream: Callable[[str], AsyncIterable[Any]], prompts: Iterable[str],
                   concurrency: int, clock: Callable[[], float] = time.perf_counter) -> LoadRun:
    """Send every prompt, at most `concurrency` in flight (a new one starts as one finishes).

    `open_stream(prompt)` returns the stream, e.g. `lambda p: llm.astream(p)`. Each stream's
    clock starts when it is sent, so TTFT includes queueing in the server, not in this client.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1 (got {concurrency}): with none in flight "
                         "nothing would ever be sent")
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> StreamResult:
        async with gate:
            return await record_stream(open_stream(prompt), clock)

    start = clock()
    results = await asyncio.gather(*(one(p) for p in prompts))
    return LoadRun(concurrency=concurrency, results=list(results), wall_s=clock() - start)


def requests_for(level: int, rounds: int = 2, minimum: int = 4) -> int:
    """How many requests a sweep sends at `level`: each in-flight place used `rounds` times."""
    return max(rounds * level, minimum)


async def sweep_concurrency(open_stream: Callable[[str], AsyncIterable[Any]], prompts: Sequence[str],
                            levels: Iterable[int], rounds: int = 2, minimum: int = 4,
                            clock: Callable[[], float] = time.perf_counter,
                            verbose: bool = True) -> list[LoadRun]:
    """One `run_load` per concurrency level, prompts taken in turn from `prompts`."""
    if not prompts:
        raise ValueError("sweep_concurrency needs at least one prompt to send")
    runs = []
    for level in levels:
        count = requests_for(level, rounds, minimum)
        batch = [prompts[i % len(prompts)] for i in range(count)]
        run = await run_load(open_stream, batch, level, clock)
        runs.append(run)
        if verbose:
            p50, p95 = run.ttft_p50_s or 0.0, run.ttft_p95_s or 0.0
            print(f"concurrency {level:>3}: {count:>3} requests in {run.wall_s:5.2f} s · "
                  f"{run.aggregate_tokens_per_s:6.1f} tokens/s · TTFT p50 {p50 * 1000:6.0f} ms, "
                  f"p95 {p95 * 1000:6.0f} ms · ITL {(run.itl_mean_s or 0.0) * 1000:5.1f} ms")
    return runs


def sweep_levels(slots: int | None) -> list[int]:
    """Concurrency levels from 1 to twice the server's slots (1, 2, 4, 8, 16 when unknown)."""
    if slots is None:
        return [1, 2, 4, 8, 16]
    return sorted(level for level in {1, 2, 4, slots, 2 * slots} if level <= 2 * slots)


def cached_tokens(usage: Any) -> int | None:
    """Prompt tokens the server read from its prefix cache, from OpenAI-style usage data
    (`usage.prompt_tokens_details.cached_tokens`); None when the server does not report it."""
    details = getattr(usage, "prompt_tokens_details", None)
    if details is None and isinstance(usage, dict):
        details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        return details.get("cached_tokens")
    return getattr(details, "cached_tokens", None)


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
                   clock: Callable[[], float] = time.perf_counter) -> PromptTiming:
    """Stream one chat completion with the `openai` client and keep its usage data, which
    carries `prompt_tokens_details.cached_tokens` (LangChain's usage_metadata drops it)."""
    result, usage = StreamResult(), None
    start = clock()
    stream = client.chat.completions.create(model=model, messages=messages, temperature=0,
                                            max_completion_tokens=max_tokens, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        result.text += result.record(chunk, clock() - start)
        usage = getattr(chunk, "usage", None) or usage
    result.total_s = clock() - start
    return PromptTiming(prompt_tokens=getattr(usage, "prompt_tokens", None),
                        cached_tokens=cached_tokens(usage), result=result)


@dataclass(frozen=True)
class ReferencePoint:
    concurrency: int
    ttft_ms: float
    itl_ms: float
    tokens_per_s: float


def load_reference(path: Path = REFERENCE_CSV) -> list[ReferencePoint]:
    """A published benchmark table (CSV; lines starting with # say where it comes from)."""
    with path.open() as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return [ReferencePoint(int(r["concurrency"]), float(r["ttft_ms"]), float(r["itl_ms"]),
                               float(r["tokens_per_s"])) for r in rows]


def reference_source(path: Path = REFERENCE_CSV) -> str:
    """The comment lines of the reference file: its source, named."""
    with path.open() as handle:
        return "\n".join(line[1:].strip() for line in handle if line.startswith("#"))


def ratios_to_first(values: Sequence[float | None]) -> list[float | None]:
    """Each value divided by the first (concurrency 1)."""
    first = values[0] if values else None
    return [v / first if v is not None and first else None for v in values]


def sweep_chart(runs: Sequence[LoadRun], slots: int | None = None, title: str | None = None, ax=None):
    """Aggregate tokens/s (left axis) and TTFT p50/p95 and mean ITL (right axis) vs concurrency."""
    from .charts import _figure

    fig, ax = _figure(ax, size=(7, 3.6))
    levels = [run.concurrency for run in runs]
    ax.plot(levels, [run.aggregate_tokens_per_s for run in runs], marker="o", color="#76b900",
            lw=2.5, label="aggregate tokens/s")
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("aggregate output tokens/s", color="#4a7a00")
    ax.set_ylim(bottom=0)
    ax.set_xticks(levels)
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
    ax.set_title(title or "Throughput flattens at saturation; latency keeps growing", fontsize=9)
    return fig


def reference_chart(runs: Sequence[LoadRun], reference: Sequence[ReferencePoint],
                    title: str | None = None, ax=None):
    """Your sweep and the published benchmark on the same axes, as ratios to concurrency 1."""
    from .charts import _figure

    fig, ax = _figure(ax, size=(7, 4.4))
    levels = [run.concurrency for run in runs]
    published = [point.concurrency for point in reference]
    yours = {"aggregate tokens/s": [r.aggregate_tokens_per_s for r in runs],
             "TTFT p50": [r.ttft_p50_s for r in runs], "mean ITL": [r.itl_mean_s for r in runs]}
    theirs = {"aggregate tokens/s": [p.tokens_per_s for p in reference],
              "TTFT p50": [p.ttft_ms for p in reference], "mean ITL": [p.itl_ms for p in reference]}
    colours = {"aggregate tokens/s": "#76b900", "TTFT p50": "#1f77b4", "mean ITL": "#ff7f0e"}
    for name, colour in colours.items():
        ax.plot(levels, ratios_to_first(yours[name]), marker="o", color=colour, lw=2,
                label=f"yours: {name}")
        ax.plot(published, ratios_to_first(theirs[name]), marker="x", color=colour, ls="--",
                label=f"NIM, Llama 3.1 8B: {name}")
    ax.axhline(1, color="#5a5a5a", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent requests (log scale)")
    ax.set_ylabel("ratio to concurrency 1 (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncol=3)
    ax.set_title(title or "Your server and a published NIM benchmark, relative to one request",
                 fontsize=9)
    return fig
