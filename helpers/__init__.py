"""Helpers for the streaming and batching notebooks: settings, live streaming, timing."""

from .charts import plot_timeline
from .friendly_errors import BackendNotReady, KitError, enable_friendly_errors, explain
from .readiness import Readiness, check_ready, wait_until_ready
from .settings import OFFLINE_CAVEAT, ConnectionSettings, load_settings
from .streaming import StreamResult, stream_print
from .timing import Comparison, Sweep, Timer, compare, concurrency_sweep


def check_backend(timeout_s: float = 120.0) -> ConnectionSettings:
    """Load settings, say which backend this is, wait until it is ready, and turn on
    short error messages. Returns the settings for `ChatNVIDIA(base_url=..., model=...)`."""
    settings = load_settings()
    print(settings.describe())
    enable_friendly_errors(base_url=settings.base_url, model=settings.model)
    wait_until_ready(settings, timeout_s=timeout_s)
    return settings


__all__ = [
    "BackendNotReady", "Comparison", "ConnectionSettings", "KitError", "OFFLINE_CAVEAT",
    "Readiness", "StreamResult", "Sweep", "Timer", "check_backend", "check_ready", "compare",
    "concurrency_sweep", "enable_friendly_errors", "explain", "load_settings", "plot_timeline",
    "stream_print", "wait_until_ready",
]
