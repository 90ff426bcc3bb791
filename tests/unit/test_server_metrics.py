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
