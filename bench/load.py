"""Load bench: 30 learners at once, each streaming a ~100-token answer from the offline server.

    python bench/load.py [--learners 30] [--max-tokens 100]

Uses NIM_BASE_URL / NIM_MODEL when NIM_BASE_URL is set and answers; otherwise starts its own offline
server on a free 127.0.0.1 port and stops it afterwards (the kit's `model_endpoint`).

What counts as complete: every request asks for at most --max-tokens tokens, so a stream
that ends with finish_reason "stop" (the model finished) or "length" (it reached the cap)
is complete. A stream that ends without any finish_reason, or with an error, is truncated.

Reported: time to first token (TTFT) and total time per learner as p50/p95 (medians are the
headline: a few queued learners make the mean meaningless), aggregate output tokens/s of the
whole crowd, and that throughput relative to one stream on its own (the median of three
single streams, run first). The last line is machine-readable:

    completed=<n>/<N> p50_ttft_s=<x> p95_ttft_s=<x> aggregate_vs_single=<x>
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass

from openai import OpenAI

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helpers.latency import percentile  # noqa: E402 - after the path above
from llm_kit.offline.server import model_endpoint  # noqa: E402

PROMPT = ("In about 90 words, explain to a new colleague why a chat app streams the answer "
          "token by token instead of waiting for the whole reply.")
COMPLETE = ("stop", "length")
REQUEST_TIMEOUT_S = 300  # a queued learner may wait long for one of the 6 slots


@dataclass
class Run:
    """One learner's stream."""

    ttft_s: float | None = None
    total_s: float | None = None
    finish_reason: str | None = None
    tokens: int = 0  # completion tokens (the server's usage data; else content chunks)
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and self.finish_reason in COMPLETE


def stream_once(client: OpenAI, model: str, max_tokens: int, learner: int) -> Run:
    run = Run()
    start = time.perf_counter()
    chunks = 0
    try:
        stream = client.chat.completions.create(
            model=model, max_tokens=max_tokens, temperature=0.7, seed=learner, stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": PROMPT}])
        for chunk in stream:
            if chunk.usage is not None:
                run.tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.delta.content:
                    chunks += 1
                    if run.ttft_s is None:
                        run.ttft_s = time.perf_counter() - start
                if choice.finish_reason:
                    run.finish_reason = choice.finish_reason
    except Exception as exc:  # noqa: BLE001 - a failed learner is counted, not fatal
        run.error = f"{type(exc).__name__}: {exc}"
    run.total_s = time.perf_counter() - start
    run.tokens = run.tokens or chunks
    return run


def crowd(client: OpenAI, model: str, learners: int, max_tokens: int) -> tuple[list[Run], float]:
    """All learners at once (threads released together); returns runs and wall time."""
    runs: list[Run | None] = [None] * learners
    gate = threading.Barrier(learners + 1)

    def learner(i: int) -> None:
        gate.wait()
        runs[i] = stream_once(client, model, max_tokens, i)

    threads = [threading.Thread(target=learner, args=(i,), daemon=True) for i in range(learners)]
    for thread in threads:
        thread.start()
    gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 30)
    wall = time.perf_counter() - start
    return [r if r is not None else Run(error="never finished") for r in runs], wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--singles", type=int, default=3, help="single streams for the baseline")
    args = parser.parse_args(argv)

    with model_endpoint() as (base_url, model):
        client = OpenAI(base_url=base_url, api_key=os.environ.get("NVIDIA_API_KEY") or "none",
                        timeout=REQUEST_TIMEOUT_S, max_retries=0)
        print(f"endpoint {base_url} model {model}; max_tokens={args.max_tokens}", flush=True)

        singles = [stream_once(client, model, args.max_tokens, 1000 + i) for i in range(args.singles)]
        single_rates = [r.tokens / r.total_s for r in singles if r.complete and r.total_s]
        single_rate = statistics.median(single_rates) if single_rates else math.nan
        single_ttfts = [r.ttft_s for r in singles if r.ttft_s is not None]
        single_ttft = statistics.median(single_ttfts) if single_ttfts else math.nan
        print(f"single stream: {single_rate:.1f} tok/s, first token {single_ttft:.2f} s "
              f"(medians of {len(singles)})", flush=True)

        runs, wall = crowd(client, model, args.learners, args.max_tokens)

    done = [r for r in runs if r.complete]
    truncated = [r for r in runs if not r.complete]
    ttfts = [r.ttft_s for r in done if r.ttft_s is not None]
    totals = [r.total_s for r in done if r.total_s is not None]
    tokens = sum(r.tokens for r in runs)
    aggregate = tokens / wall if wall else 0.0
    ratio = aggregate / single_rate if single_rate > 0 else math.nan
    reasons = {reason: sum(r.finish_reason == reason for r in runs) for reason in COMPLETE}

    print(f"\n{args.learners} learners at once, wall {wall:.1f} s")
    print(f"  complete:  {len(done)}/{len(runs)} (stop {reasons['stop']}, length {reasons['length']}"
          f"; truncated {len(truncated)})")
    for r in truncated[:5]:
        print(f"    truncated: finish_reason={r.finish_reason} error={r.error}")
    if ttfts:
        print(f"  TTFT:      p50 {percentile(ttfts, 50):.2f} s   p95 {percentile(ttfts, 95):.2f} s")
        print(f"  total:     p50 {percentile(totals, 50):.2f} s   p95 {percentile(totals, 95):.2f} s")
    print(f"  tokens:    {tokens} in {wall:.1f} s = {aggregate:.1f} tok/s aggregate "
          f"vs {single_rate:.1f} tok/s single → ×{ratio:.2f}")
    p50 = percentile(ttfts, 50) if ttfts else math.nan
    p95 = percentile(ttfts, 95) if ttfts else math.nan
    print(f"completed={len(done)}/{len(runs)} p50_ttft_s={p50:.2f} p95_ttft_s={p95:.2f} "
          f"aggregate_vs_single={ratio:.2f}")
    return 0 if not truncated else 1


if __name__ == "__main__":
    sys.exit(main())
