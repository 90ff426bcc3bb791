"""Is the model server ready? Understands NIM's /v1/health/ready and llama.cpp's /health."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .friendly_errors import START_OFFLINE, BackendNotReady, enable_friendly_errors
from .settings import ConnectionSettings, load_settings
from .waiting import poll_until

# A NIM accepts no connection while it downloads and loads its model (docker-compose.yml's
# healthcheck allows it 30 minutes), so a configured NIM that does not answer is waited for.
NIM_STARTING = ("A NIM's first start downloads and loads the model, which takes 10–30 minutes; "
                "`docker compose logs -f llama` shows how far it got.")
# ... unless the connection error says the host name is unknown: no wait fixes that.
NAME_UNKNOWN = ("name or service not known", "nodename nor servname", "name resolution",
                "no address associated", "getaddrinfo failed")


@dataclass(frozen=True)
class Readiness:
    # "ready" | "loading" | "unreachable" | "no-key" | "wrong-model" | "wrong-url" | "error"
    state: str
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def check_ready(settings: ConnectionSettings, timeout_s: float = 3.0) -> Readiness:
    """Ask the server once whether it can answer now."""
    if settings.backend == "hosted":
        if not settings.api_key:
            return Readiness("no-key", "the hosted catalog needs NVIDIA_API_KEY")
        probes = [f"{settings.base_url}/models"]
        headers = {"Authorization": f"Bearer {settings.api_key}"}
    else:
        probes = [f"{settings.server_root}/v1/health/ready", f"{settings.server_root}/health"]
        headers = {}
    try:
        with httpx.Client(timeout=timeout_s, headers=headers) as client:
            for url in probes:
                response = client.get(url)
                if response.status_code == 404 and url != probes[-1]:
                    continue  # not a NIM: try llama.cpp's endpoint
                if response.status_code == 200:
                    served = [] if settings.backend == "hosted" else served_models(client, settings)
                    if served and settings.model not in served:
                        return Readiness("wrong-model", ", ".join(served))
                    return Readiness("ready", url)
                if response.status_code == 503:
                    return Readiness("loading", f"{url} answered 503 (model loading)")
                if response.status_code in (401, 403):
                    return Readiness("no-key", f"{url} answered {response.status_code}")
                if response.status_code == 404:
                    return Readiness("wrong-url", f"{url} answered HTTP 404")
                return Readiness("error", f"{url} answered HTTP {response.status_code}")
    except httpx.TransportError as exc:
        return Readiness("unreachable", f"{type(exc).__name__}: {exc}")
    return Readiness("error", "no health endpoint answered")


def served_models(client: httpx.Client, settings: ConnectionSettings) -> list[str]:
    """The model ids the server lists at /v1/models ([] when it lists none or cannot say).

    Needed because llama.cpp's server answers whatever model name a request carries.
    """
    try:
        response = client.get(f"{settings.base_url}/models")
        data = response.json().get("data", []) if response.status_code == 200 else []
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    except (httpx.TransportError, ValueError, AttributeError):
        return []


def nim_starting(settings: ConnectionSettings, readiness: Readiness) -> bool:
    """Whether this is a configured NIM that does not accept connections yet (still starting),
    rather than the offline server, the hosted catalog, or a host name that does not resolve."""
    detail = readiness.detail.lower()
    return (settings.backend == "nim" and readiness.state == "unreachable"
            and not any(words in detail for words in NAME_UNKNOWN))


def not_ready_message(settings: ConnectionSettings, readiness: Readiness, waited_s: float) -> str:
    """One short paragraph: what is wrong and what to do."""
    where = settings.base_url
    if nim_starting(settings, readiness):
        return (f"The NIM at {where} is not up yet after {waited_s:.0f} s: it accepts no "
                f"connection while it starts. {NIM_STARTING} Wait, then run this cell again "
                "(`check_backend(timeout_s=1800)` waits up to 30 minutes).")
    if readiness.state == "no-key":
        return ("The hosted API catalog needs an API key and none was accepted. Put "
                "NVIDIA_API_KEY=nvapi-... in your shell or in .env (never in a notebook), "
                "or unset it to use the offline model, then restart the kernel.")
    if readiness.state == "wrong-model":
        return (f"The model server at {where} does not serve the model '{settings.model}' "
                f"(it serves: {readiness.detail}). Set NIM_MODEL to one of those (in your shell "
                "or .env), then restart the kernel.")
    if readiness.state == "wrong-url":
        return (f"Something answers at {where}, but not a model server's API ({readiness.detail}). "
                "Check NIM_BASE_URL: the server's address ending in /v1, e.g. "
                "http://127.0.0.1:8000/v1 for the offline one. Then restart the kernel.")
    if readiness.state == "loading":
        return (f"The model server at {where} is up but still loading its model after "
                f"{waited_s:.0f} s. {NIM_STARTING} Wait, then run this cell again.")
    if readiness.state == "unreachable":
        return (f"No model server answers at {where}. Start the offline one with "
                f"`{START_OFFLINE}` (or launch the workshop with `make workshop`), or set "
                "NIM_BASE_URL to a running NIM, then run this cell again.")
    return (f"The model server at {where} is not healthy ({readiness.detail}). "
            "Check its logs (`llm-kit server status` for the offline one) and run this cell again.")


class _Progress:
    """What a waiting cell shows: a note once a starting NIM is seen, then one line that is
    rewritten in place."""

    def __init__(self, settings: ConnectionSettings, timeout_s: float, quiet: bool):
        self.settings, self.timeout_s, self.quiet = settings, timeout_s, quiet
        self.shown = self.told = False

    def waiting(self, readiness: Readiness, starting: bool, waited: float) -> None:
        if self.quiet:
            return
        if starting and not self.told:
            self.end_line()
            print(f"The NIM at {self.settings.base_url} is not up yet. {NIM_STARTING} "
                  f"Waiting up to {self.timeout_s:.0f} s.")
            self.told = True
        state = ("loading the model" if readiness.state == "loading"
                 else "the NIM is not up yet" if starting else "not answering yet")
        sys.stdout.write(f"\r⏳ Waiting for {self.settings.base_url}: {state} ({waited:.0f} s)…")
        sys.stdout.flush()
        self.shown = True

    def end_line(self) -> None:
        if self.shown and not self.quiet:
            sys.stdout.write("\n")
        self.shown = False


def wait_until_ready(settings: ConnectionSettings, timeout_s: float = 120.0,
                     poll_s: float = 1.0, quiet: bool = False,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> Readiness:
    """Poll until the server is ready, showing progress; raise BackendNotReady on failure.

    A loading server (503) and a configured NIM that does not listen yet (it is starting) are
    waited for, up to `timeout_s`; anything else fails after a short grace period (missing keys
    and wrong addresses at once), so nobody stares at a silent cell.
    """
    grace_s = min(timeout_s, 5.0)
    progress = _Progress(settings, timeout_s, quiet)

    def check(waited: float) -> Readiness | None:
        readiness = check_ready(settings)
        if readiness.ready:
            progress.end_line()
            if not quiet:
                print(f"✅ Model server ready at {settings.base_url} ({waited:.1f} s)")
            return readiness
        starting = nim_starting(settings, readiness)
        limit = timeout_s if readiness.state == "loading" or starting else grace_s
        if readiness.state in ("no-key", "wrong-model", "wrong-url") or waited >= limit:
            progress.end_line()
            raise BackendNotReady(not_ready_message(settings, readiness, waited))
        progress.waiting(readiness, starting, waited)
        return None

    # check() itself gives up at its limit, so the loop's own timeout is only a backstop.
    return poll_until(check, timeout_s=float("inf"), interval_s=poll_s, sleep=sleep, clock=clock)


def check_backend(timeout_s: float = 120.0) -> ConnectionSettings:
    """Load settings, say which backend this is, wait until it is ready, and turn on
    short error messages. Returns the settings for `ChatNVIDIA(base_url=..., model=...)`."""
    settings = load_settings()
    print(settings.describe())
    enable_friendly_errors(base_url=settings.base_url, model=settings.model)
    wait_until_ready(settings, timeout_s=timeout_s)
    return settings
