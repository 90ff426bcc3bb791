"""Helpers for the streaming and batching notebooks. Import them from here:

    from helpers import check_backend, stream_print, compare

`__all__` below is the public API (the helper list in docs/authoring.md is checked against it). The
submodules are the implementation; `helpers.grading` serves the exercises' hidden tests.
"""

from .async_streams import StreamBoard
from .background_server import BackgroundServer
from .batch_progress import BatchProgress
from .bridge import plot_two_clients, two_clients
from .charts import bar_chart, plot_timeline, show
from .chat_panel import ChatPanel
from .chunks import chunk_text
from .completions_probe import completions_served
from .fault_injection import RateLimitingProxy
from .friendly_errors import enable_friendly_errors, explain
from .latency import LoadRun, load_reference, measure_prompt, plot_sweep, record_stream
from .ports import free_port
from .ray_processes import ray_processes, start_ray
from .readiness import check_backend, check_ready, wait_until_ready
from .server_activity import RequestPeak, watch_server, watches_chart
from .server_metrics import server_slots
from .settings import load_settings
from .sse import iter_sse_text, sse_lines, sse_response
from .streaming import StreamResult, stream_print
from .timing import Timer, compare
from .web_page import add_stream_page

__all__ = [
    # where the model is, whether it is ready, and errors that read as one paragraph
    "check_backend", "check_ready", "enable_friendly_errors", "explain",
    "load_settings", "wait_until_ready",
    # streams as they arrive, and their timing
    "StreamResult", "chunk_text", "stream_print",
    "Timer", "compare",
    "bar_chart", "plot_timeline", "show",
    # what the server itself reports
    "RequestPeak", "server_slots", "watch_server", "watches_chart",
    # several streams at once, and a group of prompts in one call
    "StreamBoard", "completions_served",
    # serving streams: SSE, a background server, Ray, the bridge, a web page
    "BackgroundServer", "add_stream_page", "free_port", "iter_sse_text", "ray_processes", "start_ray",
    "sse_lines", "sse_response", "two_clients", "plot_two_clients",
    # faults to learn from
    "RateLimitingProxy",
    # latency and throughput
    "LoadRun", "load_reference", "measure_prompt", "plot_sweep", "record_stream",
    # widgets
    "BatchProgress", "ChatPanel",
]
