"""helpers.latency: TTFT, ITL, percentiles and load runs, computed from recorded streams;
failed requests counted as failed, never as latency."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from helpers.latency import (
    LoadRun,
    cached_tokens,
    inter_token_latencies,
    load_reference,
    measure_prompt,
    percentile,
    record_stream,
    run_load,
    sweep_chart,
    text_arrivals,
)
from helpers.ports import free_port
from helpers.server_metrics import server_slots
from helpers.settings import ConnectionSettings
from helpers.streaming import StreamResult


def recorded(*chunks, output_tokens=None, total_s=None, error=None) -> StreamResult:
    """A StreamResult from (arrival_s, text) pairs, booked the way a real stream is."""
    result = StreamResult()
    for arrival, text in chunks:
        result.text += result.record(text, arrival)
    result.output_tokens = output_tokens
    result.total_s = total_s if total_s is not None else (chunks[-1][0] if chunks else 0.0)
    result.error = error
    return result


def ticking(step: float = 0.1):
    """A clock that advances by `step` on every reading."""
    now = [0.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def test_percentile_interpolates_like_numpy():
    assert percentile([0.2, 0.4, 0.3], 50) == pytest.approx(0.3)
    assert percentile([0.2, 0.4, 0.3], 95) == pytest.approx(0.39)
    assert percentile([1.0, 0.2, 0.6, 0.4, 0.8], 95) == pytest.approx(0.96)
    assert percentile([], 50) is None


def test_role_finish_and_empty_chunks_are_not_tokens():
    stream = recorded((0.05, ""), (0.2, "Once"), (0.25, ""), (0.4, " upon"), (0.5, ""))
    assert stream.ttft_s == 0.2
    assert text_arrivals(stream) == [0.2, 0.4]
    assert inter_token_latencies(stream) == [pytest.approx(0.2)]
    assert inter_token_latencies(recorded((0.1, ""), (0.3, "one"))) == []


def test_load_run_numbers_from_synthetic_streams():
    run = LoadRun(concurrency=2, wall_s=2.0, results=[
        recorded((0.0, ""), (0.1, "a"), (0.2, "b"), (0.3, "c"), (0.4, "d"), output_tokens=4, total_s=0.5),
        recorded((0.0, ""), (0.5, "a"), (1.0, "b"), output_tokens=6, total_s=1.5),
        recorded((0.0, ""), (0.3, "partial"), error=RuntimeError("server gone")),  # left out
    ])
    assert len(run.answered) == 2
    assert run.ttfts_s == [0.1, 0.5]
    assert run.ttft_p50_s == pytest.approx(0.3)
    assert run.ttft_p95_s == pytest.approx(0.48)
    assert run.itl_mean_s == pytest.approx((0.1 * 3 + 0.5) / 4)  # pooled: every gap counts once
    assert run.output_tokens == 10
    assert run.aggregate_tokens_per_s == pytest.approx(5.0)
    assert run.requests_per_s == pytest.approx(1.0)
    assert run.per_request_tokens_per_s == pytest.approx((8.0 + 4.0) / 2)
    row = run.row()
    assert row["ttft_p50_ms"] == 300.0 and row["answered"] == 2 and row["requests"] == 3
    assert row["failed"] == 1


def test_a_level_where_every_request_failed_shows_failures_and_no_latency():
    refused = RuntimeError("[429] Too Many Requests")
    run = LoadRun(concurrency=4, wall_s=1.0, results=[recorded((0.0, ""), error=refused)] * 4)
    row = run.row()
    assert (row["requests"], row["answered"], row["failed"]) == (4, 0, 4)
    assert row["ttft_p50_ms"] is None and row["itl_mean_ms"] is None
    assert row["aggregate_tokens_per_s"] == 0.0 and row["tokens_per_s_per_request"] is None
    answered = LoadRun(concurrency=1, wall_s=1.0, results=[recorded((0.0, ""), (0.1, "a"), (0.2, "b"))])
    fig = sweep_chart([run, answered])  # no TypeError on the missing numbers
    assert len(fig.axes) == 2


def test_tokens_fall_back_to_text_chunks_without_usage_data():
    run = LoadRun(concurrency=1, wall_s=1.0, results=[recorded((0.1, "a"), (0.2, "b"), (0.3, "c"))])
    assert run.output_tokens == 3


def test_an_empty_run_reports_nothing_instead_of_failing():
    run = LoadRun(concurrency=4)
    assert run.ttft_p50_s is None and run.itl_mean_s is None
    assert run.aggregate_tokens_per_s == 0.0 and run.per_request_tokens_per_s is None


async def chunks(*texts, fail_after=None):
    for i, text in enumerate(texts):
        if fail_after is not None and i == fail_after:
            raise ConnectionError("connection reset by peer")
        await asyncio.sleep(0)
        yield text


def test_record_stream_times_each_chunk_from_the_start():
    result = asyncio.run(record_stream(chunks("", "Hi", " there"), clock=ticking()))
    assert result.arrivals_s == pytest.approx([0.1, 0.2, 0.3])
    assert result.ttft_s == pytest.approx(0.2)
    assert result.text == "Hi there" and result.completed


def test_record_stream_keeps_what_arrived_before_a_failure():
    result = asyncio.run(record_stream(chunks("", "Hi", " there", fail_after=2), clock=ticking()))
    assert result.text == "Hi"
    assert isinstance(result.error, ConnectionError) and result.error_message


def test_run_load_never_exceeds_the_concurrency_and_reaches_it():
    in_flight, peak = [0], [0]

    async def stream(prompt):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            for word in ("", prompt, "!"):
                await asyncio.sleep(0.001)
                yield word
        finally:
            in_flight[0] -= 1

    run = asyncio.run(run_load(stream, [f"p{i}" for i in range(7)], concurrency=3))
    assert peak[0] == 3
    assert [r.text for r in run.results] == [f"p{i}!" for i in range(7)]  # in prompt order
    assert run.concurrency == 3 and run.wall_s > 0


def test_nonsense_load_settings_say_so_instead_of_hanging():
    async def stream(prompt):
        yield prompt

    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(run_load(stream, ["a"], concurrency=0))


def test_server_slots_is_none_where_nothing_answers():
    settings = ConnectionSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    assert server_slots(settings, timeout_s=1.0) is None


def test_cached_tokens_from_sdk_objects_and_dicts():
    assert cached_tokens(SimpleNamespace(prompt_tokens_details=SimpleNamespace(cached_tokens=362))) == 362
    assert cached_tokens({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 7}}) == 7
    assert cached_tokens(SimpleNamespace(prompt_tokens=9, prompt_tokens_details=None)) is None
    assert cached_tokens(None) is None


def sdk_chunk(text=None, usage=None):
    choices = [] if text is None else [SimpleNamespace(delta=SimpleNamespace(content=text),
                                                       finish_reason=None)]
    return SimpleNamespace(choices=choices, usage=usage)


def test_measure_prompt_keeps_the_usage_data():
    usage = SimpleNamespace(prompt_tokens=373, completion_tokens=2,
                            prompt_tokens_details=SimpleNamespace(cached_tokens=362))
    asked = {}

    def create(**kwargs):
        asked.update(kwargs)
        return iter([sdk_chunk(""), sdk_chunk("Yes"), sdk_chunk("."), sdk_chunk(usage=usage)])

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    timing = measure_prompt(client, "m", [{"role": "user", "content": "q"}], clock=ticking())
    assert asked["stream"] is True and asked["stream_options"] == {"include_usage": True}
    assert (timing.prompt_tokens, timing.cached_tokens) == (373, 362)
    assert timing.ttft_s == pytest.approx(0.2)  # the clock read 0.1 when the request went out
    assert timing.itl_mean_s == pytest.approx(0.1)
    assert timing.result.text == "Yes."


def test_reference_table_names_its_source_and_holds_the_published_figures():
    reference = load_reference()
    points = reference.points
    first, at_200 = points[0], next(p for p in points if p.concurrency == 200)
    assert (first.concurrency, first.ttft_ms, first.itl_ms, first.tokens_per_s) == (1, 10.26, 4.63, 214.56)
    assert (at_200.ttft_ms, at_200.itl_ms, at_200.tokens_per_s) == (465.18, 12.65, 13348.4)
    assert [p.concurrency for p in points] == sorted(p.concurrency for p in points)
    assert "https://docs.nvidia.com/nim/benchmarking/" in reference.source and "1.8.0" in reference.source
    assert not any(line.startswith("#") for line in reference.source.splitlines())


def test_the_sweep_chart_draws_throughput_and_latency():
    runs = [LoadRun(concurrency=c, wall_s=1.0, results=[
        recorded((0.0, ""), (0.1 * c, "a"), (0.1 * c + 0.02 * c, "b"), output_tokens=10 * min(c, 6))])
        for c in (1, 6, 12)]
    fig = sweep_chart(runs, slots=6)
    throughput_axis, latency_axis = fig.axes
    assert [line.get_label() for line in throughput_axis.get_lines()][0] == "aggregate tokens/s"
    assert list(throughput_axis.get_lines()[0].get_ydata()) == [10.0, 60.0, 60.0]
    assert [line.get_label() for line in latency_axis.get_lines()] == ["TTFT p50", "TTFT p95", "mean ITL"]


def test_the_sweep_chart_spreads_wide_levels_on_a_log_axis_labelled_at_each_level():
    """A NIM's levels 1, 5, 25 ... 200: on a linear axis 1 and 5 would sit on top of each other."""
    levels = [1, 5, 25, 50, 100, 200]
    runs = [LoadRun(concurrency=c, wall_s=1.0, results=[recorded((0.0, ""), (0.1, "a"), (0.2, "b"))])
            for c in levels]
    axis = sweep_chart(runs).axes[0]
    assert axis.get_xscale() == "log"
    assert list(axis.get_xticks()) == levels
    assert [label.get_text() for label in axis.get_xticklabels()] == [str(c) for c in levels]
    assert not list(axis.get_xticks(minor=True))
