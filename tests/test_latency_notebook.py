"""Notebook 9 runs top to bottom against the real offline server, and what it teaches holds in
its own measurements: throughput flattens at the slot count while TTFT and ITL grow, a longer
prompt delays the first token, and a repeated system prompt comes from the prefix cache."""

from __future__ import annotations

import pytest

from notebook_runner import register_report, reported, run_notebook

pytestmark = pytest.mark.server

NAME = "09_latency_and_throughput"
OFFLINE_SLOTS = 6  # llm-kit server start's default --parallel
MARK = "MEASURED "
# Appended to a copy of the notebook: reads the kernel's variables after the lesson ran.
REPORT = f"""
import json
print({MARK!r} + json.dumps({{
    "slots": slots,
    "sweep": [{{"concurrency": r.concurrency, "requests": len(r.results), "answered": len(r.answered),
               "aggregate_tokens_per_s": r.aggregate_tokens_per_s, "ttft_p50_s": r.ttft_p50_s,
               "ttft_p95_s": r.ttft_p95_s, "itl_mean_s": r.itl_mean_s}} for r in runs],
    "prefill": [{{"prompt_tokens": p.prompt_tokens, "ttft_s": p.ttft_s, "itl_mean_s": p.itl_mean_s}}
                for p in prefill],
    "cache": {{name: {{"prompt_tokens": t.prompt_tokens, "cached_tokens": t.cached_tokens,
                      "ttft_s": t.ttft_s}} for name, t in (("cold", cold), ("warm", warm))}},
}}))
"""


register_report(NAME, REPORT)  # the session runs the notebook once, with this cell


@pytest.fixture(scope="module")
def executed(offline_server):
    return run_notebook("solutions", NAME)


@pytest.fixture(scope="module")
def measured(executed):
    return reported(executed, MARK)


def tagged(executed, tag):
    cells = [c for c in executed.notebook.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}"
    return cells[0]


def test_runs_clean_on_the_offline_backend_with_charts_as_images(executed, capsys):
    with capsys.disabled():
        print(f"\n⏱ solutions/{NAME}.ipynb executed in {executed.seconds:.1f} s")
    assert executed.error is None, f"{NAME} failed: {executed.error}"
    assert not executed.cells_with_errors()
    text = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    assert "Backend: the offline llama.cpp server" in text and "often wrong" in text
    for tag in ("five-numbers", "sweep-chart", "prefill", "reference-chart"):
        outputs = tagged(executed, tag).outputs
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{tag}: no PNG chart saved"
    assert "docs.nvidia.com/nim/benchmarking" in executed.text_of(tagged(executed, "reference"))


def test_sweep_goes_past_the_slots_with_more_requests_than_slots(measured, capsys):
    with capsys.disabled():
        for s in measured["sweep"]:
            print(f"  concurrency {s['concurrency']:>2}: {s['aggregate_tokens_per_s']:5.1f} tokens/s · "
                  f"TTFT p50 {s['ttft_p50_s'] * 1000:5.0f} ms, p95 {s['ttft_p95_s'] * 1000:5.0f} ms · "
                  f"ITL {s['itl_mean_s'] * 1000:5.1f} ms")
        print(f"  cache: {measured['cache']} · prefill: {measured['prefill']}")
    assert measured["slots"] == OFFLINE_SLOTS, "read from llama.cpp's /props total_slots"
    sweep = measured["sweep"]
    levels = [level["concurrency"] for level in sweep]
    assert levels[0] == 1 and OFFLINE_SLOTS in levels and levels[-1] >= 2 * OFFLINE_SLOTS
    top = sweep[-1]
    assert top["requests"] > OFFLINE_SLOTS
    assert all(level["answered"] == level["requests"] for level in sweep), "every request answered"


def test_throughput_rises_to_the_slots_then_plateaus(measured):
    by_level = {level["concurrency"]: level for level in measured["sweep"]}
    single = by_level[1]["aggregate_tokens_per_s"]
    at_slots = by_level[OFFLINE_SLOTS]["aggregate_tokens_per_s"]
    top = measured["sweep"][-1]["aggregate_tokens_per_s"]
    # margins are wide: the machine is shared, the shape is what the lesson claims
    assert at_slots > 1.3 * single, (
        f"1 → {OFFLINE_SLOTS} in flight should raise tokens/s clearly: {single:.1f} → {at_slots:.1f}")
    assert top < 1.5 * at_slots, f"past the slots tokens/s should flatten: {at_slots:.1f} → {top:.1f}"


def test_latency_grows_with_load(measured):
    sweep = measured["sweep"]
    first, at_slots = sweep[0], next(s for s in sweep if s["concurrency"] == OFFLINE_SLOTS)
    top = sweep[-1]
    # past the slots, requests queue for a free slot: TTFT jumps
    assert top["ttft_p50_s"] > 3 * at_slots["ttft_p50_s"], (at_slots, top)
    assert top["ttft_p95_s"] >= top["ttft_p50_s"]
    assert top["ttft_p95_s"] > 3 * first["ttft_p95_s"], (first, top)
    # a decode step carrying several requests takes longer than one carrying one
    assert top["itl_mean_s"] > 1.2 * first["itl_mean_s"], (first, top)


def test_a_longer_prompt_delays_the_first_token(measured):
    prefill = measured["prefill"]
    tokens = [p["prompt_tokens"] for p in prefill]
    assert tokens == sorted(tokens) and tokens[-1] > 4 * tokens[0], tokens
    assert prefill[-1]["ttft_s"] > 2 * prefill[0]["ttft_s"], prefill


def test_the_repeated_system_prompt_comes_from_the_prefix_cache(measured):
    cold, warm = measured["cache"]["cold"], measured["cache"]["warm"]
    assert cold["prompt_tokens"] > 300
    assert warm["cached_tokens"] > 0
    assert warm["cached_tokens"] > 0.8 * warm["prompt_tokens"], "nearly the whole prompt was cached"
    assert cold["cached_tokens"] < 0.2 * cold["prompt_tokens"], "the first request found nothing to reuse"
    assert warm["ttft_s"] < cold["ttft_s"] / 2, (cold, warm)
