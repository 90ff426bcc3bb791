"""Which model server a kit command talks to, decided in one place: the configured backend when
it answers, else the offline server on this machine's port, reused when one runs there and
started (then stopped again on leaving) when none does."""

from __future__ import annotations

import os
from collections.abc import Callable

from helpers.readiness import check_ready
from helpers.settings import (
    OFFLINE_MODEL_ID,
    WORKSHOP_BASE_URL,
    ConnectionSettings,
    export_dotenv,
    load_settings,
)

from .offline.config import DEFAULT_PORT

USABLE = ("ready", "loading")  # a NIM still loading will answer: the notebooks wait for it
Say = Callable[[str], object] | None


def configured_backend(env: dict[str, str] | None = None) -> ConnectionSettings | None:
    """The NIM or hosted backend the user configured, or None (use the offline server).
    Without `env` (a real run), .env's key and telemetry switch reach the process too."""
    if env is None:
        export_dotenv()
    environ = dict(os.environ if env is None else env)
    settings = load_settings(env=environ)
    explicitly_set = bool(environ.get("NIM_BASE_URL") or environ.get("NVIDIA_API_KEY"))
    dotenv_set = settings.base_url != WORKSHOP_BASE_URL or settings.api_key
    if not (explicitly_set or dotenv_set):
        return None
    return settings


def _tell(say: Say, message: str) -> None:
    if say is not None:
        say(message)


def offline_settings(port: int) -> ConnectionSettings:
    """The offline server on this machine's `port`."""
    return ConnectionSettings(base_url=f"http://127.0.0.1:{port}/v1", model=OFFLINE_MODEL_ID)


class Backend:
    """The backend a command uses (`settings`). Entering it (`with`) makes sure the offline
    server runs when that is the choice: reused when one runs on `port`, else started; leaving
    stops it only if it was started here."""

    def __init__(self, settings: ConnectionSettings, port: int, configured: bool, say: Say,
                 parallel: int | None = None):
        self.settings = settings
        self.port = port
        self.parallel = parallel  # slots of an offline server started here (None: the default)
        self.configured = configured  # the user's backend, not the offline server
        self.server = None  # the offline server's ServerStatus, once entered
        self.started = False  # started on entry (so stopped on exit)
        self._say = say

    def say(self, message: str) -> None:
        _tell(self._say, message)

    def __enter__(self) -> Backend:
        if self.configured:
            return self
        from .offline import server_status, start_server

        running = server_status(self.port)
        if running.running:
            self.say(f"Reusing the offline server already running on port {self.port}.")
            self.server = running
            return self
        self.say(f"Starting the offline server on port {self.port} (it loads, then warms up)…")
        slots = {} if self.parallel is None else {"parallel": self.parallel}
        self.server = start_server(port=self.port, quiet=True, **slots)
        self.started = True
        self.say(f"✅ Offline model server ready: {self.settings.base_url} (model "
                 f"{OFFLINE_MODEL_ID}, warmed up)\n   log: {self.server.log}")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.started:
            from .offline import stop_server

            stop_server(self.port, quiet=True)
            self.started = False
            self.say(f"Stopped the offline server on port {self.port}.")


def pick_backend(port: int = DEFAULT_PORT, configured: ConnectionSettings | None = None, *,
                 say: Say = print, parallel: int | None = None) -> Backend:
    """`configured` (e.g. `configured_backend()`) if it answers, else the offline server on
    `port` (started with `parallel` slots when one is started); says which through `say` (None:
    silent). Starts nothing: `with` the result does."""
    if configured is not None:
        readiness = check_ready(configured)
        if readiness.state in USABLE:
            _tell(say, f"Using the configured backend: {configured.base_url} ({configured.model})")
            return Backend(configured, port, configured=True, say=say)
        _tell(say, f"The configured backend {configured.base_url} is not usable "
                   f"({readiness.state}); falling back to the offline model.")
    return Backend(offline_settings(port), port, configured=False, say=say, parallel=parallel)
