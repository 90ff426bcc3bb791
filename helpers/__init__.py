"""Helpers for the streaming and batching notebooks. Import them from here:

    from helpers import check_backend, stream_print, compare

`__all__` below is the public API (the README's helper list is checked against it). The
submodules are the implementation; `helpers.grading` serves the exercises' hidden tests.
"""

from .async_streams import StreamBoard, plot_timelines, run_blocking, timelines_chart
from .background_server import BackgroundServer
from .batch_progress import BatchProgress, batch_with_progress
from .bridge import iterate_in_thread, two_clients, two_clients_chart
from .charts import bar_chart, line_chart, plot_timeline, show
from .chat_panel import ChatPanel
from .chunks import chunk_text
from .fault_injection import RateLimitingProxy
from .friendly_errors import BackendNotReady, KitError, enable_friendly_errors, explain, is_transient
from .latency import (
    LoadRun,
    inter_token_latencies,
    load_reference,
    measure_prompt,
    percentile,
    reference_chart,
    reference_source,
    run_load,
    sweep_chart,
    sweep_concurrency,
    sweep_levels,
)
from .micro_batching import MicroBatcher, stream_group
from .ports import free_port, port_open
from .ray_processes import ray_processes, resident_gb
from .readiness import Readiness, check_backend, check_ready, wait_until_ready
from .server_activity import RequestPeak, ServerWatch, watch_server, watches_chart
from .server_metrics import ServerMetrics, busy_slots, read_metrics, requests_in_flight, server_slots
from .settings import OFFLINE_CAVEAT, ConnectionSettings, load_settings
from .sse import iter_sse_text, parse_sse, sse_event, sse_lines
from .streaming import StreamResult, stream_print
from .structured_stream import JsonArrayItems, array_schema, json_schema_format, stream_items
from .timing import Comparison, Sweep, Timer, compare, concurrency_sweep
from .web_page import add_stream_page

__all__ = [
    # where the model is, whether it is ready, and errors that read as one paragraph
    "BackendNotReady", "ConnectionSettings", "KitError", "OFFLINE_CAVEAT", "Readiness",
    "check_backend", "check_ready", "enable_friendly_errors", "explain", "is_transient",
    "load_settings", "wait_until_ready",
    # streams as they arrive, and their timing
    "StreamResult", "chunk_text", "stream_print",
    "Comparison", "Sweep", "Timer", "compare", "concurrency_sweep",
    "bar_chart", "line_chart", "plot_timeline", "show",
    # what the server itself reports
    "RequestPeak", "ServerMetrics", "ServerWatch", "busy_slots", "read_metrics",
    "requests_in_flight", "server_slots", "watch_server", "watches_chart",
    # structured output while it streams
    "JsonArrayItems", "array_schema", "json_schema_format", "stream_items",
    # several streams at once
    "StreamBoard", "plot_timelines", "run_blocking", "timelines_chart",
    # serving streams: SSE, a background server, micro-batching, Ray, the bridge, a web page
    "BackgroundServer", "MicroBatcher", "add_stream_page", "free_port", "iter_sse_text",
    "iterate_in_thread", "parse_sse", "port_open", "ray_processes", "resident_gb", "sse_event",
    "sse_lines", "stream_group", "two_clients", "two_clients_chart",
    # faults to learn from
    "RateLimitingProxy",
    # latency and throughput
    "LoadRun", "inter_token_latencies", "load_reference", "measure_prompt", "percentile",
    "reference_chart", "reference_source", "run_load", "sweep_chart", "sweep_concurrency",
    "sweep_levels",
    # widgets
    "BatchProgress", "ChatPanel", "batch_with_progress",
]
