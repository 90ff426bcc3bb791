"""explain() on a rate limit: a 429 is told apart from other errors in every client's form, and
the wait its Retry-After asks for (seconds or an HTTP date) is read and said."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import openai
import pytest
import requests

from helpers import explain
from helpers.friendly_errors import HOSTED_REQUESTS_PER_MINUTE, retry_after_of, retry_after_s

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def chat_nvidia_429(retry_after: str | None = None) -> Exception:
    """What ChatNVIDIA's sync client raises on a 429: a plain Exception whose context is
    requests' HTTPError with the response."""
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


def openai_429(retry_after: str) -> openai.RateLimitError:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/completions")
    response = httpx.Response(429, headers={"Retry-After": retry_after}, request=request)
    return openai.RateLimitError("Error code: 429", response=response, body=None)


@pytest.mark.parametrize("value, seconds", [
    ("3", 3.0), ("1.5", 1.5), (" 0 ", 0.0), ("-4", 0.0),
    (format_datetime(NOW + timedelta(seconds=5), usegmt=True), 5.0),
    (format_datetime(NOW - timedelta(seconds=5), usegmt=True), 0.0),  # already passed
    ("Sat, 01 Mar 2025 12:00:07 GMT", 7.0),
    ("soon", None), ("", None), (None, None),
])
def test_retry_after_reads_seconds_and_http_dates(value, seconds):
    assert retry_after_s(value, now=NOW) == seconds


def test_a_429_says_how_long_the_server_asks_you_to_wait():
    for raised in (chat_nvidia_429("30"), openai_429("30")):
        assert retry_after_of(raised) == 30.0
        text = explain(raised)
        assert "rate-limiting you (HTTP 429" in text and "wait 30 s (Retry-After)" in text, text
        assert f"about {HOSTED_REQUESTS_PER_MINUTE} a minute" in text
    without = explain(chat_nvidia_429())  # no header: the async client keeps no response either
    assert retry_after_of(chat_nvidia_429()) is None and "Wait a few seconds" in without
    assert "rate-limiting you" in explain(Exception("[429] Too Many Requests"))
    # the advice retries only what may pass (notebook 6's lesson), a bounded number of times
    assert ("with_retry(retry_if_exception_type=is_transient, stop_after_attempt=3)" in without
            and "notebook 6" in without), without


def test_other_errors_are_not_read_as_a_rate_limit():
    assert "rate-limiting" not in explain(ValueError("bad input"))
    assert "rate-limiting" not in explain(Exception("[500] Internal Server Error"))
