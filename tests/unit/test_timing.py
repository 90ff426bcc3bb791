"""Timer, compare and concurrency_sweep."""

import math

import pytest

from helpers.timing import Timer, compare, concurrency_sweep


class StepClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_timer_context_manager(capsys):
    clock = StepClock()
    with Timer("work", clock=clock) as timer:
        clock.now += 1.5
    assert timer.elapsed_s == pytest.approx(1.5)
    assert "work: 1.500 s" in capsys.readouterr().out


def test_timer_decorator_records_every_call():
    clock = StepClock()
    timer = Timer(verbose=False, clock=clock)

    @timer
    def work(seconds):
        clock.now += seconds
        return seconds * 2

    assert work(1.0) == 2.0
    assert work(3.0) == 6.0
    assert timer.laps_s == pytest.approx([1.0, 3.0])
    assert timer.label == "work"
    assert work.timer is timer


def test_compare_ratio_results_and_chart():
    clock = StepClock()

    def slow():
        clock.now += 3.0
        return "slow"

    def fast():
        clock.now += 1.0
        return "fast"

    comparison = compare(slow, fast, labels=("loop", "batch"), repeats=3, plot=False,
                         verbose=False, clock=clock)
    assert comparison.times_s == ([3.0] * 3, [1.0] * 3)
    assert comparison.ratio == pytest.approx(3.0)
    assert comparison.results == ("slow", "fast")
    assert "batch is 3.00x faster than loop" in comparison.summary()
    slower = compare(fast, slow, labels=("loop", "batch"), plot=False, verbose=False, clock=clock)
    assert slower.summary().endswith("→ batch is 3.00x slower than loop"), "never '0.33x faster'"
    fig = comparison.plot()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["loop", "batch"]
    assert [round(p.get_width(), 2) for p in ax.patches] == [3.0, 1.0]


def test_compare_interleaves_runs():
    order = []
    compare(lambda: order.append("a"), lambda: order.append("b"), repeats=2, plot=False,
            verbose=False)
    assert order == ["a", "b", "a", "b"]


def test_concurrency_sweep_times_each_value():
    clock = StepClock()

    def run(n):
        clock.now += 8.0 / n

    sweep = concurrency_sweep(run, values=[1, 2, 4, 8], plot=False, verbose=False, clock=clock)
    assert sweep.values == [1, 2, 4, 8]
    assert sweep.times_s == pytest.approx([8.0, 4.0, 2.0, 1.0])
    assert sweep.best() == (8, pytest.approx(1.0))
    line = sweep.plot().axes[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 4, 8]


def test_sweep_warms_up_repeats_round_by_round_and_takes_medians():
    clock = StepClock()
    calls = []
    noise = iter([0, 0, 0, 9.0, 0, 0])  # one busy moment, during the second round of value 1

    def run(n):
        calls.append(n)
        if len(calls) > 1:  # the warm-up is not timed
            clock.now += 6.0 / min(n, 3) + next(noise)

    sweep = concurrency_sweep(run, values=[1, 3, 6], repeats=2, warmup=True, plot=False,
                              verbose=False, clock=clock)
    assert calls == [6, 1, 3, 6, 1, 3, 6]  # warm-up with the last value, then round after round
    assert sweep.runs_s == [[6.0, 15.0], [2.0, 2.0], [2.0, 2.0]]
    assert sweep.times_s == pytest.approx([10.5, 2.0, 2.0])  # medians of two: their mean
    assert sweep.time_at(3) == pytest.approx(2.0)
    assert "median of 2" in sweep.table() and "5.25x" in sweep.table()


def test_plateau_start_is_where_more_stops_paying():
    clock = StepClock()
    wall = {1: 12.0, 2: 6.5, 3: 4.4, 6: 2.2, 12: 2.1}

    def run(n):
        clock.now += wall[n]

    sweep = concurrency_sweep(run, values=list(wall), plot=False, verbose=False, clock=clock)
    assert sweep.plateau_start() == 6  # 2.2 is within 10 % of the best (2.1); 4.4 is not
    assert sweep.plateau_start(within=1.5) == 3


def test_sweep_chart_marks_the_server_slots():
    clock = StepClock()
    sweep = concurrency_sweep(lambda n: None, values=[1, 6, 12], mark=(6, "6 server slots"),
                              plot=False, verbose=False, clock=clock)
    ax = sweep.plot().axes[0]
    marks = [line for line in ax.lines if line.get_label() == "6 server slots"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [6, 6]


def test_timeline_chart_marks_first_token():
    from helpers.charts import timeline_chart
    from helpers.streaming import StreamResult

    result = StreamResult(text="abc", ttft_s=0.5, total_s=1.0, chunk_count=3,
                          arrivals_s=[0.2, 0.5, 1.0], chunk_texts=["", "ab", "c"])
    ax = timeline_chart(result).axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert any("first token 0.50 s" in label for label in labels)
    assert list(ax.lines[0].get_ydata()) == [0, 2, 3]


def test_a_run_with_a_failed_request_is_counted_and_left_out_of_the_times():
    """A batch with return_exceptions=True returns each failed request's exception in its place:
    the sweep counts it as failed and leaves the run it was in out of the medians (a refused
    request is quick, and no measure of speed); a value with no run left has no time."""
    clock = StepClock()
    refused = iter([False, True, False, False, True, True])  # run by run, round after round

    def run(n):
        clock.now += 4.0 / n if n < 4 else 1.5
        return ["answer", RuntimeError("[429] Too Many Requests")] if next(refused) else ["answer"] * 2

    sweep = concurrency_sweep(run, values=[1, 2, 4], repeats=2, plot=False, verbose=False, clock=clock)
    assert sweep.failed == [[0, 0], [1, 1], [0, 1]]
    assert sweep.runs_s == [[4.0, 4.0], [], [1.5]]
    assert sweep.times_s[0] == 4.0 and sweep.times_s[2] == 1.5 and math.isnan(sweep.times_s[1])
    assert sweep.failed_total == 3 and sweep.plateau_start() == 4
    table = sweep.table()
    assert "| failed requests" in table.splitlines()[0] and "median of 2" in table
    assert table.splitlines()[2].split() == ["2", "|", "—", "|", "—", "|", "2"]
    assert table.splitlines()[3].split() == ["4", "|", "1.50", "|", "2.67x", "|", "1"]
    assert "3 request(s) failed: counted as failed, and the 3 run(s) they were in are left out" in table


def test_with_fewer_than_two_values_timed_there_is_no_plateau():
    clock = StepClock()
    sweep = concurrency_sweep(lambda n: [RuntimeError("refused")] if n > 1 else ["ok"],
                              values=[1, 2, 4], plot=False, verbose=False, clock=clock)
    assert sweep.plateau_start() is None and sweep.best() == (1, 0.0)
    assert concurrency_sweep(lambda n: [RuntimeError("refused")], values=[1, 2], plot=False,
                             verbose=False, clock=clock).best() is None


def test_the_server_s_slots_are_kept_and_marked(monkeypatch):
    from helpers import server_activity, server_metrics
    from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings

    monkeypatch.setattr(server_metrics, "server_slots", lambda settings: 6)
    monkeypatch.setattr(server_activity, "requests_in_flight", lambda settings: None)
    offline = ConnectionSettings("http://127.0.0.1:9/v1", OFFLINE_MODEL_ID)
    sweep = concurrency_sweep(lambda n: None, values=[1, 6, 12], server=offline, plot=False,
                              verbose=False, clock=StepClock())
    assert sweep.slots == 6 and sweep.mark == (6, "6 server slots")
    chosen = concurrency_sweep(lambda n: None, values=[1, 6], server=offline, mark=(1, "mine"),
                               plot=False, verbose=False, clock=StepClock())
    assert chosen.mark == (1, "mine") and chosen.slots == 6
