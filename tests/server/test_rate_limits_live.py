"""RateLimitRetry on the code path the hosted catalog takes: ChatNVIDIA through the kit's
RateLimitingProxy (real HTTP 429s with Retry-After, in seconds or as an HTTP date) in front of
the real offline server. Waits follow the header; failures are counted, never timed."""

from __future__ import annotations

import asyncio
import time

import pytest

from helpers import RateLimitingProxy, explain
from helpers.rate_limits import RateLimited, RateLimitRetry
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings, chat_model

pytestmark = pytest.mark.timeout(180, func_only=True)


def paced_model(limiter: RateLimitingProxy, retry: RateLimitRetry, cap: int = 8):
    settings = ConnectionSettings(limiter.base_url, OFFLINE_MODEL_ID)
    return retry.wrap(chat_model(settings, temperature=0, max_completion_tokens=cap))


def timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_invoke_waits_as_long_as_retry_after_says(offline_server, as_date):
    retry = RateLimitRetry()
    with RateLimitingProxy(offline_server.base_url, reject=2, retry_after_s=2,
                           retry_after_date=as_date) as limiter:
        answer, seconds = timed(lambda: paced_model(limiter, retry).invoke("Say hello."))
        assert (limiter.rejected, limiter.forwarded) == (2, 1)
    assert str(answer.content).strip()
    stats = retry.stats
    assert (stats.calls, stats.answered, stats.failed, stats.rate_limited, stats.retries) == (1, 1, 0, 2, 2)
    if as_date:  # an HTTP date has whole seconds: each of the two waits is 1 to 2 s
        assert 1.9 <= stats.waited_s <= 4.1
    else:
        assert stats.waited_s == pytest.approx(4.0, abs=0.05)
    assert seconds >= stats.waited_s
    assert stats.answer_s[0] < seconds - stats.waited_s + 0.05, "the answer's time leaves the waits out"


def test_a_stream_is_retried_then_streams_as_it_arrives(offline_server):
    retry = RateLimitRetry()
    with RateLimitingProxy(offline_server.base_url, reject=1, retry_after_s=1) as limiter:
        llm = paced_model(limiter, retry, cap=24)
        arrivals, start = [], time.monotonic()
        for chunk in llm.stream("Count from one to twenty."):
            if chunk.content:
                arrivals.append(time.monotonic() - start)
    assert arrivals[0] >= 1.0, "the first chunk came after the Retry-After"
    assert len(set(arrivals)) >= 3 and retry.stats.retries == 1 and retry.stats.answered == 1


def test_a_batch_retries_each_rejected_call_and_loses_none(offline_server):
    retry = RateLimitRetry()
    questions = [f"What is {n} plus {n}?" for n in range(1, 5)]
    with RateLimitingProxy(offline_server.base_url, reject=3, retry_after_s=1) as limiter:
        answers = paced_model(limiter, retry).batch(questions, config={"max_concurrency": 4})
        assert limiter.rejected == 3 and limiter.forwarded == 4
    assert len(answers) == 4 and all(str(a.content).strip() for a in answers)
    assert retry.stats.answered == 4 and retry.stats.failed == 0 and len(retry.stats.answer_s) == 4


def test_when_the_bound_runs_out_the_call_fails_and_is_counted_as_a_failure(offline_server):
    retry = RateLimitRetry(max_attempts=3)
    with RateLimitingProxy(offline_server.base_url, reject=10, retry_after_s=1) as limiter:
        llm = paced_model(limiter, retry)
        results = llm.batch(["One?", "Two?"], return_exceptions=True)
        assert limiter.forwarded == 0
    assert all(isinstance(r, RateLimited) for r in results)
    assert "429" in explain(results[0]) and "requests a minute" in explain(results[0])
    stats = retry.stats
    assert (stats.answered, stats.failed, stats.answer_s) == (0, 2, [])
    assert "0 answered, 2 failed (2 still rate-limited)" in stats.summary()


def test_a_retry_after_beyond_the_waiting_allowed_fails_at_once(offline_server):
    retry = RateLimitRetry(max_wait_s=5)
    with RateLimitingProxy(offline_server.base_url, reject=1, retry_after_s=30) as limiter:
        with pytest.raises(RateLimited, match="asks for 30 s more"):
            paced_model(limiter, retry).invoke("Hi?")
    assert retry.stats.waited_s < 1 and retry.stats.failed == 1


def test_async_streams_are_retried_too(offline_server):
    """ChatNVIDIA's async client drops the response: the wait doubles from fallback_wait_s."""
    retry = RateLimitRetry(fallback_wait_s=0.5)
    with RateLimitingProxy(offline_server.base_url, reject=2, retry_after_s=30) as limiter:
        llm = paced_model(limiter, retry)

        async def collect(question: str) -> list:
            return [chunk async for chunk in llm.astream(question)]

        async def both():
            return await asyncio.gather(collect("A?"), collect("B?"))

        streams, seconds = timed(lambda: asyncio.run(both()))
    assert all(any(c.content for c in chunks) for chunks in streams)
    assert retry.stats.answered == 2 and retry.stats.rate_limited == 2
    assert 0.5 <= seconds < 30, "no Retry-After reachable on the async path: the fallback wait"
