"""`llm-kit preflight` (`make preflight`): prove the configured backend does everything the
notebooks need, before the room fills. Prints one table; exits 1 if any check fails."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator

from helpers.settings import OFFLINE_MODEL_ID, WORKSHOP_MODEL, ConnectionSettings, find_dotenv, read_dotenv

from .cache_volume import check_cache_volume
from .checks import run_checks
from .table import WIDTH, Check, render, summary, use_color

__all__ = ["Check", "add_preflight_command", "backend_to_check", "preflight", "run_checks"]


def compose_nim(env: dict[str, str] | None = None) -> ConnectionSettings:
    """The NIM the compose stack publishes on this host (127.0.0.1:LLAMA_HOST_PORT)."""
    environ = os.environ if env is None else env
    dotenv = find_dotenv()
    port = environ.get("LLAMA_HOST_PORT") or (read_dotenv(dotenv) if dotenv else {}).get(
        "LLAMA_HOST_PORT") or "8000"
    return ConnectionSettings(base_url=f"http://127.0.0.1:{port}/v1", model=WORKSHOP_MODEL)


@contextlib.contextmanager
def backend_to_check(server_port: int, compose: bool = False) -> Iterator[tuple[ConnectionSettings, str]]:
    """(settings, note): the backend the notebooks would use. A configured NIM or key as is; on
    the compose host, the stack's NIM; otherwise the offline server (started for the check and
    stopped afterwards when none is running)."""
    from ..grading.cli import offline_backend
    from ..offline import server_status
    from ..workshop import configured_backend

    configured = configured_backend()
    if configured is not None:
        yield configured, "configured in the environment or .env"
    elif compose:
        yield compose_nim(), "the compose stack's NIM on this host"
    else:
        running = server_status(server_port).running
        with offline_backend(server_port) as base_url:
            yield (ConnectionSettings(base_url=base_url, model=OFFLINE_MODEL_ID),
                   "no NIM or key configured: the offline server" +
                   ("" if running else f", started on port {server_port} for this check"))


def preflight(settings: ConnectionSettings, rounds: int = 3, compose: bool = False,
              note: str = "", out=None) -> int:
    """Run every check, print the table, return the exit code (1 if any check failed)."""
    out = out or sys.stdout
    heading = [settings.describe().splitlines()[0], f"{settings.base_url} · {settings.model}", note]
    for i, line in enumerate(filter(None, heading)):
        print(textwrap.fill(line, WIDTH, initial_indent="  " * bool(i), subsequent_indent="  "),
              file=out)
    print(file=out, flush=True)
    started = time.perf_counter()
    with _quiet_warnings():
        checks = [*run_checks(settings, rounds=rounds), check_cache_volume(forced=compose)]
    print(render(checks, color=use_color(out)), file=out)
    print("\n" + summary(checks, time.perf_counter() - started), file=out, flush=True)
    return 1 if any(check.failed for check in checks) else 0


@contextlib.contextmanager
def _quiet_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table says what matters; library warnings blur it
        yield


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM and SIGHUP end the check like Ctrl-C: whatever it started is stopped."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    saved = {name: signal.signal(getattr(signal, name), interrupt) for name in names}
    try:
        yield
    finally:
        for name, handler in saved.items():
            signal.signal(getattr(signal, name), handler)


def _command(args: argparse.Namespace) -> int:
    if args.rounds < 0:
        from helpers.friendly_errors import KitError

        raise KitError("--rounds must be 0 or more.")
    with _stop_on_signals(), backend_to_check(args.server_port, args.compose) as (settings, note):
        return preflight(settings, rounds=args.rounds, compose=args.compose, note=note)


def add_preflight_command(commands, default_port: int) -> None:
    parser = commands.add_parser("preflight", help="check that the configured backend does "
                                 "everything the notebooks need (one table)")
    parser.add_argument("--compose", action="store_true",
                        help="on the Docker Compose host: also check the NIM cache volume, and "
                             "check the stack's NIM when no backend is configured")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the batch-vs-loop timing (median; 0 skips the timings)")
    parser.add_argument("--server-port", type=int, default=default_port,
                        help="offline server port when no backend is configured")
    parser.set_defaults(run=_command)
