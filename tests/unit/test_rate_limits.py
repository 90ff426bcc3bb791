"""RateLimitRetry's logic on a fake clock: Retry-After in both forms, the bounds on tries and
on waiting, pacing, and what is counted (a failed call is never a timing)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from langchain_core.runnables import Runnable

from helpers import explain
from helpers.rate_limits import RateLimited, RateLimitRetry, is_rate_limited, retry_after_of, retry_after_s
from helpers.settings import HOSTED_BASE_URL, WORKSHOP_BASE_URL, WORKSHOP_MODEL, ConnectionSettings

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


class FakeTime:
    """A clock that moves only when slept on; `work_s` is what each call itself takes."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def retry(self, **kwargs) -> RateLimitRetry:
        return RateLimitRetry(clock=self.clock, sleep=self.sleep, asleep=self.asleep, **kwargs)


def too_many(retry_after: str | None = None) -> Exception:
    """What ChatNVIDIA raises on a 429: a plain Exception whose context is requests' HTTPError
    with the response (the way its sync client raises it)."""
    response = requests.Response()
    response.status_code = 429
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    try:
        try:
            raise requests.HTTPError("429 Client Error", response=response)
        except requests.HTTPError:
            raise Exception("[429] Too Many Requests\nrate limit reached") from None
    except Exception as exc:  # noqa: BLE001
        return exc


class Script:
    """A call that raises the given exceptions in turn, then answers; `work_s` per try."""

    def __init__(self, time_: FakeTime, *failures: Exception, work_s: float = 0.5):
        self.time, self.failures, self.work_s = time_, list(failures), work_s
        self.tries = 0

    def __call__(self, *args, **kwargs):
        self.tries += 1
        self.time.now += self.work_s
        if self.failures:
            raise self.failures.pop(0)
        return f"answer {self.tries}"


# --- reading a 429 -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    ("3", 3.0), ("1.5", 1.5), (" 0 ", 0.0), ("-4", 0.0),
    (format_datetime(NOW + timedelta(seconds=5), usegmt=True), 5.0),
    (format_datetime(NOW - timedelta(seconds=5), usegmt=True), 0.0),  # already passed
    ("Sat, 01 Mar 2025 12:00:07 GMT", 7.0),
    ("soon", None), ("", None), (None, None),
])
def test_retry_after_reads_seconds_and_http_dates(value, seconds):
    assert retry_after_s(value, now=NOW) == seconds


def test_a_chatnvidia_429_is_recognised_and_its_header_read():
    exc = too_many("2")
    assert is_rate_limited(exc) and retry_after_of(exc) == 2.0
    assert retry_after_of(too_many()) is None  # a 429 without the header
    assert is_rate_limited(Exception("[429] Too Many Requests"))  # the async client: no response
    assert not is_rate_limited(Exception("[500] Internal Server Error\nsee 429 docs"))
    assert not is_rate_limited(ValueError("bad input"))


# --- retries, bounds and counts --------------------------------------------------------------------

def test_a_429_is_retried_after_the_wait_the_server_asks_for():
    time_ = FakeTime()
    retry = time_.retry()
    call = Script(time_, too_many("3"), too_many("2"))
    assert retry.call(call) == "answer 3"
    assert [s for s in time_.sleeps if s] == [3.0, 2.0]
    stats = retry.stats
    assert (stats.calls, stats.answered, stats.failed, stats.rate_limited, stats.retries) == (1, 1, 0, 2, 2)
    assert stats.waited_s == 5.0
    assert stats.answer_s == [0.5], "only the attempt that answered is timed"


def test_without_retry_after_the_wait_doubles():
    time_ = FakeTime()
    retry = time_.retry(fallback_wait_s=1.0)
    assert retry.call(Script(time_, too_many(), too_many(), too_many())) == "answer 4"
    assert [s for s in time_.sleeps if s] == [1.0, 2.0, 4.0]


def test_tries_are_bounded_and_a_failure_is_counted_not_timed():
    time_ = FakeTime()
    retry = time_.retry(max_attempts=3)
    call = Script(time_, *(too_many("1") for _ in range(5)))
    with pytest.raises(RateLimited, match="3 times in a row") as raised:
        retry.call(call)
    assert call.tries == 3
    assert is_rate_limited(raised.value), "the 429 stays in the chain"
    assert "40 requests a minute" in explain(raised.value)
    stats = retry.stats
    assert (stats.calls, stats.answered, stats.failed, stats.rate_limited) == (1, 0, 1, 3)
    assert stats.answer_s == [] and "1 failed (1 still rate-limited)" in stats.summary()


def test_a_wait_beyond_the_bound_ends_the_call_at_once():
    time_ = FakeTime()
    retry = time_.retry(max_wait_s=60)
    call = Script(time_, too_many("20"), too_many("45"))
    with pytest.raises(RateLimited, match="asks for 45 s more, beyond the 60 s"):
        retry.call(call)
    assert call.tries == 2 and [s for s in time_.sleeps if s] == [20.0], "no hopeless wait"


def test_other_errors_are_not_retried():
    time_ = FakeTime()
    retry = time_.retry()
    call = Script(time_, ValueError("[400] Bad Request"))
    with pytest.raises(ValueError):
        retry.call(call)
    assert call.tries == 1 and retry.stats.failed == 1 and retry.stats.retries == 0


def test_a_429_holds_back_the_other_calls_until_its_retry_after():
    time_ = FakeTime()
    retry = time_.retry()
    waits_of_b: list[float] = []

    def a_sleeps(seconds: float) -> None:
        if seconds > 0:  # A waits out its Retry-After; meanwhile B starts a call
            retry.sleep = waits_of_b.append
            retry.call(Script(time_, work_s=0.0))
            retry.sleep = a_sleeps
        time_.sleep(seconds)

    retry.sleep = a_sleeps
    retry.call(Script(time_, too_many("5")))
    assert waits_of_b == [5.0], "B waits for A's Retry-After although B itself got no 429"


def test_pacing_spaces_the_sends():
    time_ = FakeTime()
    retry = time_.retry(requests_per_minute=30)  # one every 2 s
    for _ in range(3):
        retry.call(Script(time_, work_s=0.5))
    assert time_.sleeps == [0.0, 1.5, 1.5]
    assert retry.stats.answer_s == [0.5, 0.5, 0.5] and retry.stats.waited_s == 3.0


def test_the_hosted_catalog_is_paced_and_other_backends_not():
    hosted = RateLimitRetry.for_settings(ConnectionSettings(HOSTED_BASE_URL, WORKSHOP_MODEL))
    nim = RateLimitRetry.for_settings(ConnectionSettings(WORKSHOP_BASE_URL, WORKSHOP_MODEL))
    assert hosted.interval_s == pytest.approx(1.5) and nim.interval_s == 0.0


# --- streams -------------------------------------------------------------------------------------

class Stream:
    """A stream that raises `before` on the first next(), else yields `pieces` (then `after`)."""

    def __init__(self, pieces, before=None, after=None):
        self.pieces, self.before, self.after = pieces, before, after
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.before is not None:
            raise self.before
        if not self.pieces:
            if self.after is not None:
                raise self.after
            raise StopIteration
        return self.pieces.pop(0)

    def close(self):
        self.closed = True


def test_a_stream_is_retried_only_before_its_first_chunk():
    time_ = FakeTime()
    retry = time_.retry()
    opened = [Stream([], before=too_many("1")), Stream(["a", "b"])]
    assert list(retry.stream(lambda: opened.pop(0))) == ["a", "b"]
    assert retry.stats.retries == 1 and retry.stats.answered == 1

    broken = Stream(["a"], after=ConnectionError("gone"))
    chunks = []
    with pytest.raises(ConnectionError):
        for chunk in retry.stream(lambda: broken):
            chunks.append(chunk)
    assert chunks == ["a"] and retry.stats.failed == 1 and retry.stats.retries == 1


def test_leaving_a_stream_early_closes_it_and_counts_it_answered():
    retry = FakeTime().retry()
    inner = Stream(["a", "b", "c"])
    stream = retry.stream(lambda: inner)
    assert next(stream) == "a"
    stream.close()
    assert inner.closed and retry.stats.answered == 1


def test_async_calls_and_streams_retry_too():
    time_ = FakeTime()
    retry = time_.retry(fallback_wait_s=1.0)
    failures = [Exception("[429] Too Many Requests"), Exception("[429] Too Many Requests")]

    async def answer():
        if failures:
            raise failures.pop(0)
        return "ok"

    async def chunks():
        if failures:
            raise failures.pop(0)
        for piece in ("x", "y"):
            yield piece

    async def run():
        first = await retry.acall(answer)
        failures.append(Exception("[429] Too Many Requests"))
        streamed = [c async for c in retry.astream(chunks)]
        return first, streamed

    assert asyncio.run(run()) == ("ok", ["x", "y"])
    assert [s for s in time_.sleeps if s] == [1.0, 2.0, 1.0]  # no header on async: doubling
    assert retry.stats.answered == 2 and retry.stats.retries == 3


# --- a wrapped model -------------------------------------------------------------------------------

class Flaky(Runnable):
    """A model whose first `fail` calls answer 429; records the keyword arguments it got."""

    model = "flaky-model"

    def __init__(self, fail: int):
        self.fail = fail
        self.kwargs: list[dict] = []

    def invoke(self, input, config=None, **kwargs):
        self.kwargs.append(kwargs)
        if self.fail:
            self.fail -= 1
            raise too_many("0")
        return f"answer to {input}"


def test_a_wrapped_model_retries_each_batch_input_and_bound_calls():
    model = Flaky(fail=3)
    llm = RateLimitRetry().wrap(model)
    assert llm.batch(["a", "b", "c"], config={"max_concurrency": 2}) == [
        "answer to a", "answer to b", "answer to c"]
    assert llm.retry.stats.rate_limited == 3 and llm.retry.stats.answered == 3
    model.fail = 1
    assert llm.bind(max_completion_tokens=5).invoke("d") == "answer to d"
    assert model.kwargs[-1] == {"max_completion_tokens": 5}, "bound arguments reach the model"
    assert llm.model == "flaky-model", "the model's own attributes read through"
