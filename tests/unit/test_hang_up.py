"""helpers.hang_up: the sentence after a hang-up demo claims only what the endpoint's record and
the server's watches show, on every backend: stopped, still generating, no verdict, not reported,
and nothing to cancel when the answer was over first (as on a fast GPU)."""

from __future__ import annotations

from helpers.hang_up import hang_up_outcome
from helpers.server_activity import Reading, ServerWatch


def watch(label: str, counts: list[float | None], running: int | None = 0, step_s: float = 0.25,
          instances: list[float | None] | None = None) -> ServerWatch:
    """A real ServerWatch over readings `step_s` apart, with the token counter at `counts`."""
    instances = instances or [None] * len(counts)
    return ServerWatch(label, [Reading(i * step_s, running, count, instance)
                               for i, (count, instance) in enumerate(zip(counts, instances, strict=True))])


GENERATING = [100.0, 110, 120, 130, 140, 150, 160, 170, 180]
STILL = [180.0] * 9


def test_a_hang_up_that_stopped_the_server_says_so_with_its_figures():
    said = hang_up_outcome(True, watch("after", STILL), watch("connected", GENERATING, running=1))
    assert said.startswith("The hang-up cancelled the endpoint mid-answer")
    assert "generated 80 tokens in 2.0 s" in said
    assert said.endswith("the cancellation reached the model server and its work stopped.")


def test_a_server_that_kept_generating_is_not_called_stopped():
    said = hang_up_outcome(True, watch("after", GENERATING, running=1))
    assert "went on generating" in said and "did not reach the model server" in said
    assert "stopped" not in said


def test_an_answer_over_before_the_hang_up_leaves_nothing_to_cancel():
    # the GPU case: the counter stood still while the client was connected, the endpoint ran to
    # its end, and the server's verdicts both say idle: no cancellation is claimed
    said = hang_up_outcome(False, watch("after", STILL), watch("connected", STILL))
    assert said.startswith("Nothing to cancel: the answer was complete before the client hung up")
    assert "already stood still while the client was connected" in said
    assert "cancelled the endpoint" not in said and "reached" not in said
    # the endpoint's record decides, even when the first watch still saw the last tokens
    late = hang_up_outcome(False, watch("after", STILL), watch("connected", GENERATING))
    assert late.startswith("Nothing to cancel") and "already stood still" not in late


def test_a_server_that_reports_nothing_leaves_the_endpoint_record_as_the_evidence():
    silent = watch("after", [None], running=None)
    said = hang_up_outcome(True, silent, watch("connected", [None], running=None))
    assert "does not report what it is doing" in said and "only evidence" in said
    assert hang_up_outcome(False, silent).startswith("Nothing to cancel")


def test_readings_from_two_replicas_get_no_verdict_but_the_reason():
    mixed = watch("after", STILL, instances=[1.0, 2.0] * 4 + [1.0])
    said = hang_up_outcome(True, mixed)
    assert "cannot say" in said and "different server processes" in said
    assert "stopped." not in said and "went on generating" not in said
