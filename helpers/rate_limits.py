"""Calls to a rate-limited API, retried the way the API asks: after a 429 Too Many Requests,
wait what its Retry-After header says (seconds or an HTTP date), then try again, within a
bound on tries and on total waiting. A call that still fails is counted as a failure; only the
attempt that answered is timed.

NVIDIA's hosted catalog answers 429 beyond roughly 40 requests a minute (as users report it),
and ChatNVIDIA does not retry. It raises a plain `Exception("[429] ...")`: its synchronous calls
keep the HTTP response on that exception's context (the `requests.HTTPError` it replaced), where
Retry-After is read; its async calls keep no response, so there the wait doubles from
`fallback_wait_s`.

>>> retry = RateLimitRetry.for_settings(settings)
>>> llm = retry.wrap(ChatNVIDIA(...))     # invoke, stream, batch, ainvoke, astream as before
>>> print(retry.stats.summary())
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from langchain_core.runnables import Runnable

from .friendly_errors import KitError
from .settings import ConnectionSettings

TOO_MANY_REQUESTS = 429
# Third-party reports of the hosted catalog's free tier; NVIDIA publishes no figure.
HOSTED_REQUESTS_PER_MINUTE = 40
_CLIENT_MESSAGE = re.compile(r"^\[429\]|\berror code: 429\b", re.IGNORECASE)
ADVICE = (f"The hosted catalog allows about {HOSTED_REQUESTS_PER_MINUTE} requests a minute: "
          "send fewer, or wait a minute and run the cell again.")
_END = object()  # a stream that ended before its first chunk


class RateLimited(KitError):
    """A call still answered 429 when its retries or its waiting ran out."""


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP date (RFC 9110
    §10.2.3). None when absent or unreadable; a date in the past means 0."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _status(exc: BaseException) -> int | None:
    for value in (getattr(exc, "status_code", None), getattr(exc, "status", None),
                  getattr(getattr(exc, "response", None), "status_code", None)):
        if isinstance(value, int):
            return value
    return None


def is_rate_limited(exc: BaseException) -> bool:
    """Whether the call was answered 429 (ChatNVIDIA, requests, httpx, openai, aiohttp)."""
    return any(_status(e) == TOO_MANY_REQUESTS or _CLIENT_MESSAGE.search(str(e).strip())
               for e in _chain(exc))


def retry_after_of(exc: BaseException, now: datetime | None = None) -> float | None:
    """The wait a 429's Retry-After header asks for, where the exception still carries the
    response (None otherwise)."""
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None)
        if headers is not None and headers.get("Retry-After") is not None:
            return retry_after_s(headers.get("Retry-After"), now)
    return None


@dataclass
class RetryStats:
    """What the calls through one RateLimitRetry came to. `answer_s` times only the attempts
    that answered; failed calls are in `failures`, never in a timing."""

    calls: int = 0
    answered: int = 0
    rate_limited: int = 0  # 429 answers received, retried or not
    retries: int = 0
    waited_s: float = 0.0  # after 429s, and pacing
    answer_s: list[float] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        given_up = sum(isinstance(f, RateLimited) for f in self.failures)
        failed = f"{self.failed} failed" + (f" ({given_up} still rate-limited)" if given_up else "")
        return (f"{self.calls} calls: {self.answered} answered, {failed}; "
                f"HTTP 429 {self.rate_limited} times, {self.retries} retries, "
                f"{self.waited_s:.1f} s spent waiting (not counted as latency)")


@dataclass
class _Call:
    """One call's tries so far: its Retry-After waits count against the bound, pacing not."""

    attempt: int = 1
    asked_s: float = 0.0  # Retry-After (or fallback) waits so far
    waited_s: float = 0.0  # all waiting, pacing included
    started: float = 0.0  # when the current attempt was sent


class RateLimitRetry:
    """Bounded, paced retries of calls answered 429.

    Each call gets at most `max_attempts` tries and `max_wait_s` of waiting for Retry-After;
    a wait longer than what is left ends the call at once (`RateLimited`). A 429 also holds
    back every other call through this instance until its Retry-After has passed, and
    `requests_per_minute` (optional) spaces all sends evenly. Thread- and task-safe.
    """

    def __init__(self, max_attempts: int = 4, max_wait_s: float = 60.0,
                 fallback_wait_s: float = 2.0, requests_per_minute: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 asleep: Callable[[float], Any] = asyncio.sleep):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.fallback_wait_s = fallback_wait_s
        self.interval_s = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.clock, self.sleep, self.asleep = clock, sleep, asleep
        self.stats = RetryStats()
        self._lock = threading.Lock()
        self._not_before = float("-inf")
        self._last_send = float("-inf")

    @classmethod
    def for_settings(cls, settings: ConnectionSettings, **kwargs) -> RateLimitRetry:
        """Paced at HOSTED_REQUESTS_PER_MINUTE on the hosted catalog; unpaced elsewhere."""
        if settings.backend == "hosted":
            kwargs.setdefault("requests_per_minute", HOSTED_REQUESTS_PER_MINUTE)
        return cls(**kwargs)

    def wrap(self, model: Runnable) -> RetryingModel:
        """`model` with every call retried through this instance."""
        return RetryingModel(model, self)

    # --- bookkeeping shared by every kind of call ---------------------------------------------

    def _turn(self, call: _Call) -> float:
        """Seconds until this attempt may be sent: a pending Retry-After, then the pacing."""
        with self._lock:
            now = self.clock()
            send = max(now, self._not_before, self._last_send + self.interval_s)
            self._last_send = send
        call.waited_s += send - now
        return send - now

    def _sent(self, call: _Call) -> None:
        call.started = self.clock()

    def _wait_asked(self, exc: BaseException, call: _Call) -> float:
        """The wait before the next try; raises when `exc` is no 429 or the bounds are used up."""
        if not is_rate_limited(exc):
            raise exc
        with self._lock:
            self.stats.rate_limited += 1
        asked = retry_after_of(exc)
        wait = asked if asked is not None else self.fallback_wait_s * 2 ** (call.attempt - 1)
        if call.attempt >= self.max_attempts:
            raise RateLimited(f"Rate-limited (HTTP 429) {call.attempt} times in a row. "
                              f"{ADVICE}") from exc
        if call.asked_s + wait > self.max_wait_s:
            raise RateLimited(f"Rate-limited (HTTP 429): the server asks for {wait:.0f} s more, "
                              f"beyond the {self.max_wait_s:.0f} s this call may wait. "
                              f"{ADVICE}") from exc
        return wait

    def _retry_or_raise(self, exc: BaseException, call: _Call) -> None:
        """Prepare the next try after `exc`, or record the call as failed and raise."""
        try:
            wait = self._wait_asked(exc, call)
        except Exception as final:
            self._record(call, final)
            raise
        with self._lock:
            self._not_before = max(self._not_before, self.clock() + wait)
            self.stats.retries += 1
        call.attempt += 1
        call.asked_s += wait

    def _record(self, call: _Call, failure: BaseException | None = None) -> None:
        with self._lock:
            self.stats.calls += 1
            self.stats.waited_s += call.waited_s
            if failure is None:
                self.stats.answered += 1
                self.stats.answer_s.append(self.clock() - call.started)
            else:
                self.stats.failures.append(failure)

    # --- calls --------------------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """fn(*args, **kwargs), retried on 429."""
        call = _Call()
        while True:
            self.sleep(self._turn(call))
            self._sent(call)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a 429 is retried, the rest re-raised
                self._retry_or_raise(exc, call)
                continue
            self._record(call)
            return result

    async def acall(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """await fn(*args, **kwargs), retried on 429."""
        call = _Call()
        while True:
            await self.asleep(self._turn(call))
            self._sent(call)
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                self._retry_or_raise(exc, call)
                continue
            self._record(call)
            return result

    def stream(self, open_stream: Callable[..., Any], *args, **kwargs) -> Iterator[Any]:
        """The chunks of open_stream(*args, **kwargs). A 429 before the first chunk is retried;
        an error after it is raised (what arrived was already handed on)."""
        call = _Call()
        while True:
            self.sleep(self._turn(call))
            self._sent(call)
            chunks = iter(open_stream(*args, **kwargs))
            try:
                first = next(chunks, _END)
                break
            except Exception as exc:  # noqa: BLE001
                self._retry_or_raise(exc, call)
        failure = None
        try:
            if first is not _END:
                yield first
                yield from chunks
        except Exception as exc:
            failure = exc
            raise
        finally:
            _close(chunks)
            self._record(call, failure)

    async def astream(self, open_stream: Callable[..., Any], *args, **kwargs) -> AsyncIterator[Any]:
        """The chunks of an async stream, retried like `stream`."""
        call = _Call()
        while True:
            await self.asleep(self._turn(call))
            self._sent(call)
            chunks = aiter(open_stream(*args, **kwargs))
            try:
                first = await anext(chunks, _END)
                break
            except Exception as exc:  # noqa: BLE001
                self._retry_or_raise(exc, call)
        failure = None
        try:
            if first is not _END:
                yield first
                async for chunk in chunks:
                    yield chunk
        except Exception as exc:
            failure = exc
            raise
        finally:
            if callable(getattr(chunks, "aclose", None)):
                await chunks.aclose()
            self._record(call, failure)


def _close(chunks: Any) -> None:
    """Close a stream left early: its connection goes, so the server stops generating."""
    close = getattr(chunks, "close", None)
    if callable(close):
        close()


class RetryingModel(Runnable):
    """A chat model (any Runnable) whose calls go through a RateLimitRetry. `batch` and
    `abatch` run each input's invoke, so each is retried on its own; other attributes are
    the model's own (`llm.model` is still its model id)."""

    def __init__(self, wrapped: Runnable, retry: RateLimitRetry):
        self.wrapped = wrapped
        self.retry = retry

    def invoke(self, input: Any, config=None, **kwargs) -> Any:
        return self.retry.call(self.wrapped.invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config=None, **kwargs) -> Any:
        return await self.retry.acall(self.wrapped.ainvoke, input, config, **kwargs)

    def stream(self, input: Any, config=None, **kwargs) -> Iterator[Any]:
        return self.retry.stream(self.wrapped.stream, input, config, **kwargs)

    def astream(self, input: Any, config=None, **kwargs) -> AsyncIterator[Any]:
        return self.retry.astream(self.wrapped.astream, input, config, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("wrapped", "retry"):  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)
