"""What the model server itself reports: tokens generated so far, requests running, busy slots.

Reads Prometheus metrics (llama.cpp `/metrics`, a NIM's `/v1/metrics`) and llama.cpp's `/slots`,
so a lesson can show the server's side of a stream: still generating, or stopped.

Names: llama.cpp's `llamacpp:*`; a NIM's as NVIDIA's observability page lists them, without a
prefix (`generation_tokens_total`, `num_requests_running`, ... with a `model_name` label:
https://docs.nvidia.com/nim/large-language-models/latest/observability.html); plain vLLM's with
a `vllm:` prefix (https://docs.vllm.ai/en/latest/usage/metrics.html). A Python server also
exports `process_start_time_seconds`, which tells one server process from another.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .settings import ConnectionSettings

# Our name -> the metric's name on each server (llama.cpp first, then a NIM / vLLM).
METRIC_NAMES = {
    "tokens_generated_total": ("llamacpp:tokens_predicted_total", "generation_tokens_total",
                               "vllm:generation_tokens_total"),
    "prompt_tokens_total": ("llamacpp:prompt_tokens_total", "prompt_tokens_total",
                            "vllm:prompt_tokens_total"),
    "requests_running": ("llamacpp:requests_processing", "num_requests_running",
                         "vllm:num_requests_running"),
    "requests_waiting": ("llamacpp:requests_deferred", "num_requests_waiting",
                         "vllm:num_requests_waiting"),
}
# What tells one server process from another (replicas behind one address, a restart): when
# the process started, else when its token counter was created (prometheus_client's _created).
INSTANCE_NAMES = ("process_start_time_seconds", "generation_tokens_created",
                  "vllm:generation_tokens_created")
METRICS_PATHS = ("/metrics", "/v1/metrics")  # llama.cpp, NIM
# One client for every read (building one per call costs ~20 ms), but a new connection each
# time: behind several replicas each read may land on another one, which the verdicts notice.
_HTTP = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


@dataclass(frozen=True)
class ServerMetrics:
    """One reading of the server's counters (None: this server does not report it)."""

    tokens_generated_total: float | None
    prompt_tokens_total: float | None
    requests_running: float | None  # a hint only: vLLM updates it on its next engine step
    source: str  # the URL they came from
    requests_waiting: float | None = None
    instance: float | None = None  # which server process answered (see INSTANCE_NAMES)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {sample name: value}, labelled samples summed per name."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def _pick(values: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((values[name] for name in names if name in values), None)


def read_metrics(settings: ConnectionSettings, timeout_s: float = 5.0) -> ServerMetrics | None:
    """The server's metrics now, or None when it serves none (the hosted catalog, or a
    llama.cpp server started without --metrics)."""
    if settings.backend == "hosted":  # a shared fleet: no server of yours to read
        return None
    for path in METRICS_PATHS:
        url = settings.server_root + path
        try:
            response = _HTTP.get(url, timeout=timeout_s)
        except httpx.TransportError:
            return None
        if response.status_code == 200 and "# TYPE" in response.text:
            values = parse_metrics(response.text)
            return ServerMetrics(**{ours: _pick(values, theirs) for ours, theirs in
                                    METRIC_NAMES.items()}, source=url,
                                 instance=_pick(values, INSTANCE_NAMES))
    return None


def server_json(settings: ConnectionSettings, path: str, timeout_s: float = 5.0):
    """The JSON a server answers at `path` under its root (llama.cpp's /props, /slots), or None
    when it is unreachable, answers with an error, or with something that is not JSON (and
    on the hosted catalog, which has no such endpoints, without asking)."""
    if settings.backend == "hosted":
        return None
    try:
        response = _HTTP.get(settings.server_root + path, timeout=timeout_s)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def server_slots(settings: ConnectionSettings, timeout_s: float = 5.0) -> int | None:
    """How many requests the server generates for at once: llama.cpp's `total_slots` (/props).
    None where the server does not say (a NIM, the hosted catalog)."""
    props = server_json(settings, "/props", timeout_s)
    slots = props.get("total_slots") if isinstance(props, dict) else None
    return slots if isinstance(slots, int) and slots > 0 else None


def busy_slots(settings: ConnectionSettings, timeout_s: float = 5.0) -> int | None:
    """How many of llama.cpp's slots are generating right now (None: no /slots endpoint)."""
    slots = server_json(settings, "/slots", timeout_s)
    if not isinstance(slots, list):
        return None
    return sum(1 for slot in slots if isinstance(slot, dict) and slot.get("is_processing"))


def requests_in_flight(settings: ConnectionSettings) -> int | None:
    """Requests the server is working on: busy slots on llama.cpp, else the metrics' gauge."""
    slots = busy_slots(settings)
    if slots is not None:
        return slots
    metrics = read_metrics(settings)
    if metrics is None or metrics.requests_running is None:
        return None
    return int(metrics.requests_running)
