"""Reading the server's own counters: Prometheus text from llama.cpp and from a NIM."""

from __future__ import annotations

from helpers.server_metrics import METRIC_NAMES, _pick, busy_slots, parse_metrics, read_metrics
from helpers.settings import ConnectionSettings

LLAMA_CPP = """# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 158
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
"""
NIM = """# TYPE generation_tokens_total counter
generation_tokens_total{model_name="meta/llama-3.1-8b-instruct"} 4000
generation_tokens_total{model_name="other"} 2
# TYPE num_requests_running gauge
num_requests_running{model_name="meta/llama-3.1-8b-instruct"} 3
"""


def test_llama_cpp_and_nim_names_map_to_the_same_readings():
    llama = parse_metrics(LLAMA_CPP)
    nim = parse_metrics(NIM)
    assert _pick(llama, METRIC_NAMES["tokens_generated_total"]) == 158
    assert _pick(llama, METRIC_NAMES["requests_running"]) == 2
    assert _pick(nim, METRIC_NAMES["tokens_generated_total"]) == 4002  # labelled series summed
    assert _pick(nim, METRIC_NAMES["requests_running"]) == 3
    assert _pick(nim, METRIC_NAMES["prompt_tokens_total"]) is None


def test_no_server_means_no_reading():
    nowhere = ConnectionSettings(base_url="http://127.0.0.1:9/v1", model="m")
    assert read_metrics(nowhere) is None
    assert busy_slots(nowhere) is None


def test_the_hosted_catalog_is_never_asked_for_metrics_or_slots(monkeypatch):
    """A shared fleet has no server of yours to read: on the hosted catalog's code path (also
    when KIT_BACKEND says an address is the hosted catalog) nothing is requested."""
    from helpers import server_metrics
    from helpers.server_activity import read_activity, server_busy
    from helpers.settings import HOSTED_BASE_URL, WORKSHOP_MODEL

    class NoRequests:
        def get(self, url, **kwargs):
            raise AssertionError(f"asked {url}")

    monkeypatch.setattr(server_metrics, "_HTTP", NoRequests())
    for settings in (ConnectionSettings(HOSTED_BASE_URL, WORKSHOP_MODEL, api_key="nvapi-x"),
                     ConnectionSettings("http://127.0.0.1:9/v1", WORKSHOP_MODEL, declared_backend="hosted")):
        assert read_metrics(settings) is None and busy_slots(settings) is None
        assert server_metrics.server_slots(settings) is None
        assert server_metrics.requests_in_flight(settings) is None
        reading = read_activity(settings)
        assert (reading.tokens_generated, reading.requests_running) == (None, None)
        assert server_busy(settings, sleep=lambda s: None) is None
