"""How much does `stream_print` cost compared with a bare `for chunk in stream` loop?

    python bench/stream_overhead.py [--rounds 5]

1. Synthetic: 5,000 in-memory chunks, consumed by a bare loop and by the helper (plain
   display into /dev/null) side by side: as fast as possible (helper work per chunk), and
   paced at 2,500 chunks/s (helper's share of the time, redraws per second vs the 20/s cap).
2. Real: the same prompt streamed from the model server (NIM_BASE_URL, else a fresh offline
   server). The network wait dominates a real stream and is noisy, so the helper's cost is
   measured directly: the time the consumer spends *outside* waiting for the next chunk,
   as a share of the stream's wall time, helper minus bare loop (median of --rounds).

Last line: overhead_pct=<float> redraws_per_s=<float> (real stream when a server is up).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.streaming import stream_print  # noqa: E402

PROMPT = "Write about 150 words on why rivers meander."


class WaitClock:
    """Wraps an iterator and adds up the time spent waiting inside next()."""

    def __init__(self, source):
        self.source = iter(source)
        self.waiting_s = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        try:
            return next(self.source)
        finally:
            self.waiting_s += time.perf_counter() - start


def bare_loop(stream) -> None:
    text = []
    for chunk in stream:
        text.append(getattr(chunk, "content", chunk))


def with_helper(stream):
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return stream_print(stream, display="plain")


def consumer_share(consume, make_stream) -> tuple[float, float, object]:
    """(consumer time outside the source, wall time, result) for one consumption."""
    source = WaitClock(make_stream())
    start = time.perf_counter()
    result = consume(source)
    wall = time.perf_counter() - start
    return wall - source.waiting_s, wall, result


def paced(chunks: list[str], per_s: float):
    """Yield chunks at a fixed rate (busy-waits: sleep is too coarse at this rate)."""
    start = time.perf_counter()
    for i, chunk in enumerate(chunks):
        while time.perf_counter() - start < i / per_s:
            pass
        yield chunk


def synthetic(rounds: int) -> tuple[float, float]:
    chunks = [f"tok{i} " for i in range(5000)]
    bare, helper = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        bare_loop(iter(chunks))
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        with_helper(iter(chunks))
        helper.append(time.perf_counter() - start)
    b, h = statistics.median(bare), statistics.median(helper)
    print(f"synthetic, 5000 chunks as fast as possible: bare loop {b * 1e3:.1f} ms · helper "
          f"{h * 1e3:.1f} ms → {(h - b) / 5000 * 1e6:.2f} µs of helper work per chunk")
    overheads, rates = [], []
    for _ in range(rounds):
        bare_cost, bare_wall, _ = consumer_share(bare_loop, lambda: paced(chunks, 2500))
        cost, wall, result = consumer_share(with_helper, lambda: paced(chunks, 2500))
        overheads.append((cost / wall - bare_cost / bare_wall) * 100)
        rates.append(result.redraws / result.total_s)
    print(f"synthetic, 5000 chunks at 2500 chunks/s: helper work {statistics.median(overheads):.2f}% "
          f"of the stream's time; redraws {statistics.median(rates):.1f}/s (cap 20/s)")
    return statistics.median(overheads), statistics.median(rates)


def real(rounds: int) -> tuple[float, float]:
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    from llm_kit.offline.server import model_endpoint

    with model_endpoint() as (base_url, model):
        llm = ChatNVIDIA(base_url=base_url, model=model, temperature=0, max_completion_tokens=200)
        make = lambda: llm.stream(PROMPT)  # noqa: E731
        bare_loop(make())  # warm-up
        overheads, rates, walls = [], [], []
        for _ in range(rounds):
            bare_cost, bare_wall, _ = consumer_share(bare_loop, make)
            helper_cost, helper_wall, result = consumer_share(with_helper, make)
            overheads.append((helper_cost / helper_wall - bare_cost / bare_wall) * 100)
            rates.append(result.redraws / max(result.total_s, 1e-9))
            walls.append((bare_wall, helper_wall))
        b = statistics.median(w[0] for w in walls)
        h = statistics.median(w[1] for w in walls)
        print(f"real stream ({model}, {rounds} rounds): wall bare {b:.2f} s · helper {h:.2f} s; "
              f"helper's own work {statistics.median(overheads):.3f}% of the stream's time; "
              f"redraws {statistics.median(rates):.1f}/s")
        return statistics.median(overheads), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--synthetic-only", action="store_true")
    args = parser.parse_args()
    overhead, redraws = synthetic(args.rounds)
    if not args.synthetic_only:
        overhead, redraws = real(args.rounds)
    print(f"overhead_pct={overhead:.3f} redraws_per_s={redraws:.1f}")


if __name__ == "__main__":
    main()
