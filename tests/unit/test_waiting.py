"""poll_until: the kit's one waiting loop."""

from __future__ import annotations

import pytest

from helpers.waiting import poll_until

from support import FakeClock


def test_returns_the_first_answer_and_sleeps_between_checks():
    clock, sleeps, answers = FakeClock(), [], iter([None, None, "ready"])

    def sleep(seconds):
        sleeps.append(seconds)
        clock.now += seconds

    assert poll_until(lambda waited: next(answers), timeout_s=10, interval_s=0.5, sleep=sleep,
                      clock=clock) == "ready"
    assert sleeps == [0.5, 0.5]


def test_times_out_with_the_message_for_the_wait():
    clock = FakeClock()

    def sleep(seconds):
        clock.now += seconds

    with pytest.raises(TimeoutError, match="after 3 s"):
        poll_until(lambda waited: None, timeout_s=3, interval_s=1, sleep=sleep, clock=clock,
                   timeout_message=lambda waited: f"nothing after {waited:.0f} s")


def test_a_check_that_raises_stops_the_wait_at_once():
    seen = []

    def check(waited):
        seen.append(waited)
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="died"):
        poll_until(check, timeout_s=60, sleep=lambda s: pytest.fail("must not sleep"))
    assert len(seen) == 1
