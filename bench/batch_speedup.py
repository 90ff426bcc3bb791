"""How much faster is `llm.batch` than a loop of `llm.invoke`, and than bare concurrent HTTP?

    python bench/batch_speedup.py [--rounds 5]

The six state-capital questions, answered per round three ways, side by side and interleaved:
a loop of `llm.invoke`, one `llm.batch`, and bare concurrent HTTP (httpx, one thread per
question: the floor for any client). After one warm-up round, medians of --rounds rounds.
Then time to first token of `llm.stream` over the total time of `llm.invoke` for a ~200-token
answer (median of --rounds pairs). Uses NIM_BASE_URL/NIM_MODEL, else a fresh offline server.

Last line: batch_vs_loop=<x> batch_vs_http=<x> ttft_over_invoke=<x>
  batch_vs_loop = loop wall time / batch wall time        (higher is better)
  batch_vs_http = bare-HTTP wall time / batch wall time   (higher is better; 1.0 = no overhead)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTIONS = [
    "What is the capital of California?",
    "What is the capital of Texas?",
    "What is the capital of New York?",
    "What is the capital of Florida?",
    "What is the capital of Illinois?",
    "What is the capital of Ohio?",
]
LONG_PROMPT = "Write about 150 words on how a river delta forms."
MAX_TOKENS = 64  # the capital answers are one sentence; the cap only bounds a rambling one


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    from llm_kit.offline.server import model_endpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with model_endpoint() as (base_url, model), httpx.Client(timeout=120) as http:
        llm = ChatNVIDIA(base_url=base_url, model=model, temperature=0, max_completion_tokens=MAX_TOKENS)

        def ask_http(question: str) -> str:
            response = http.post(f"{base_url}/chat/completions", json={
                "model": model, "temperature": 0, "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": question}]})
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]

        def bare_http() -> None:
            with ThreadPoolExecutor(len(QUESTIONS)) as pool:
                list(pool.map(ask_http, QUESTIONS))

        ways = {
            "invoke loop": lambda: [llm.invoke(q) for q in QUESTIONS],
            "batch": lambda: llm.batch(QUESTIONS),
            "bare concurrent HTTP": bare_http,
        }
        for fn in ways.values():  # warm-up round
            fn()
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, fn in ways.items():
                times[name].append(timed(fn))
        median = {name: statistics.median(values) for name, values in times.items()}
        for name, value in median.items():
            spread = ", ".join(f"{v:.2f}" for v in times[name])
            print(f"{name:>22}: median {value:.2f} s  [{spread}]")
        batch_vs_loop = median["invoke loop"] / median["batch"]
        batch_vs_http = median["bare concurrent HTTP"] / median["batch"]
        print(f"batch is {batch_vs_loop:.2f}x faster than the invoke loop; bare HTTP takes "
              f"{batch_vs_http:.2f}x batch's time (1.0 = batch adds nothing)")

        long_llm = ChatNVIDIA(base_url=base_url, model=model, temperature=0, max_completion_tokens=200)
        ratios = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            stream = long_llm.stream(LONG_PROMPT)
            ttft = next((time.perf_counter() - start for chunk in stream if chunk.content), None)
            for _chunk in stream:  # drain the rest so the next call starts clean
                pass
            invoke_s = timed(lambda: long_llm.invoke(LONG_PROMPT))
            ratios.append(ttft / invoke_s)
        ttft_over_invoke = statistics.median(ratios)
        print(f"stream's first token arrives after {ttft_over_invoke:.3f} of invoke's total time "
              f"(~200-token answer, median of {args.rounds})")
        print(f"batch_vs_loop={batch_vs_loop:.2f} batch_vs_http={batch_vs_http:.2f} "
              f"ttft_over_invoke={ttft_over_invoke:.3f}")


if __name__ == "__main__":
    main()
