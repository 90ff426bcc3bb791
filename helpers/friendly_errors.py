"""Turn the errors learners meet into one short paragraph: what happened, what to do."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

START_OFFLINE = "make server"  # the command that starts the offline model server
# Third-party reports of the hosted catalog's free tier; NVIDIA publishes no figure.
HOSTED_REQUESTS_PER_MINUTE = 40


class KitError(RuntimeError):
    """An error whose message is already written for a learner."""


class BackendNotReady(KitError):
    """The model server is missing, still loading, or answering with an error."""


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    if isinstance(value, int):
        return value
    match = re.search(r"\b([45]\d\d)\b", str(exc))
    return int(match.group(1)) if match else None


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


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


def retry_after_of(exc: BaseException, now: datetime | None = None) -> float | None:
    """The wait a 429's Retry-After header asks for, where the exception (or one it replaced:
    ChatNVIDIA's sync client keeps requests' HTTPError as the context) still carries the
    response; None otherwise (ChatNVIDIA's async client keeps none)."""
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None)
        if headers is not None and headers.get("Retry-After") is not None:
            return retry_after_s(headers.get("Retry-After"), now)
    return None


def _read(exc: BaseException) -> tuple[str, int | None]:
    """All messages along the exception's chain (lower case), and the first HTTP status in it."""
    texts = " | ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))
    code = next((c for c in (_status_code(e) for e in _chain(exc)) if c), None)
    return texts.lower(), code


def explain(exc: BaseException, base_url: str | None = None, model: str | None = None) -> str:
    """A one-paragraph explanation of `exc` for a learner, or the plain message if unknown."""
    if isinstance(exc, KitError):
        return str(exc)
    where = f" at {base_url}" if base_url else ""
    lowered, code = _read(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted by you (Kernel → Interrupt). Whatever arrived so far is kept."
    if code == 429 or "too many requests" in lowered or "rate limit" in lowered:
        wait = retry_after_of(exc)
        asked = (f"It asks you to wait {wait:.0f} s (Retry-After)" if wait is not None else
                 "Wait a few seconds")
        return (f"The server{where} is rate-limiting you (HTTP 429: too many requests at once or "
                f"this minute; the hosted catalog allows about {HOSTED_REQUESTS_PER_MINUTE} a minute). "
                f"{asked} and re-run the cell. For many calls, lower max_concurrency, or retry only "
                "what may pass: `llm.with_retry(retry_if_exception_type=is_transient, "
                "stop_after_attempt=3)` (notebook 6).")
    if any(w in lowered for w in ("connection refused", "connecterror", "name or service not known",
                                  "failed to establish", "nodename nor servname",
                                  "temporary failure in name resolution", "apiconnectionerror",
                                  "connection error", "cannot connect")):
        return (f"No model server answered{where}. Start the offline one with `{START_OFFLINE}` "
                "(or `make workshop`), or point NIM_BASE_URL at a running NIM, then re-run the cell.")
    if any(w in lowered for w in ("remoteprotocolerror", "incomplete chunked read",
                                  "peer closed connection", "server disconnected",
                                  "connection reset", "chunkedencodingerror")):
        return (f"The model server{where} closed the connection mid-answer (did it stop or crash?). "
                f"Check it with `llm-kit server status`, restart it with `{START_OFFLINE}`, "
                "and re-run the cell.")
    if any(w in lowered for w in ("timed out", "timeout")):
        return (f"The model server{where} did not answer in time. It may be overloaded or still "
                "loading; wait a moment and re-run the cell.")
    if code == 503 or "loading model" in lowered:
        return (f"The model server{where} is still loading the model (HTTP 503). "
                "Wait until it reports ready (`wait_until_ready(settings)`), then re-run the cell.")
    if code in (401, 403) or "api key" in lowered or "unauthorized" in lowered:
        return ("The endpoint refused the request: no valid API key. Set NVIDIA_API_KEY "
                "(in your shell or in .env, never in a notebook) or use the offline server.")
    if "context" in lowered and any(w in lowered for w in ("exceed", "too long", "too many tokens",
                                                           "context length", "context size")):
        return ("The prompt is longer than the model's context window. Shorten it "
                "(or split it) and try again.")
    if code == 404 or "model" in lowered and "not found" in lowered:
        named = f" '{model}'" if model else ""
        return (f"The server{where} does not know the model{named} or the URL path (HTTP 404). "
                "Check NIM_MODEL and NIM_BASE_URL (it should end in /v1); "
                "`llm-kit server status` shows the offline model's id.")
    return f"{type(exc).__name__}: {exc}"


def _network_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [KitError, ConnectionError, TimeoutError]
    try:
        import httpx

        types += [httpx.TransportError, httpx.HTTPStatusError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import requests

        types += [requests.ConnectionError, requests.Timeout, requests.HTTPError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import openai

        types += [openai.APIConnectionError, openai.APIStatusError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def enable_friendly_errors(base_url: str | None = None, model: str | None = None) -> bool:
    """In IPython, show network/backend errors as one short paragraph instead of a traceback.

    Returns True when installed. Unknown errors keep IPython's normal traceback.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False

    def handler(shell, etype, value, tb, tb_offset=None):
        message = explain(value, base_url=base_url, model=model)
        if message.startswith(f"{type(value).__name__}:") and not isinstance(value, KitError):
            return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        # IPython ignores what this handler returns, so show the paragraph as the cell's
        # `error` output ourselves: it replaces the traceback, and the cell still counts as
        # failed for nbclient and nbgrader (which look for an error output).
        shell._showtraceback(etype, message, ["⚠ " + message])

    # langchain-nvidia raises a plain Exception carrying the HTTP status in its text,
    # so every Exception passes through `explain`; unknown ones get the normal traceback.
    shell.set_custom_exc(_network_error_types() + (Exception,), handler)
    return True
