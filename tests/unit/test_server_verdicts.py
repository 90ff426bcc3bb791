"""Stop and watch verdicts from metric dumps in each server's own exposition format, served over
real HTTP: a NIM's /v1/metrics (names as NVIDIA's observability page lists them), a vLLM-style
one with the `vllm:` prefix, and llama.cpp's /metrics with /slots.

The verdict comes from the token counter standing still; the running-requests gauge is a hint
(after an abort vLLM can keep it at 1 until its next engine step). Replicas and other users'
requests get no verdict, but a sentence saying why."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Callable
from string import Template

import pytest

from helpers.chat_panel import Turn
from helpers.server_activity import (
    read_activity,
    server_after_stop,
    server_busy,
    watch_server,
)
from helpers.settings import WORKSHOP_MODEL, ConnectionSettings

# A Llama 3.1 8B NIM's /v1/metrics: no prefix, a model_name label, prometheus_client's process
# metrics (shape of a recorded NIM 1.x dump; names from
# https://docs.nvidia.com/nim/large-language-models/latest/observability.html).
NIM = Template("""\
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds $started
# HELP num_requests_running Number of requests currently running on GPU.
# TYPE num_requests_running gauge
num_requests_running{model_name="meta/llama-3.1-8b-instruct"} $running
# HELP num_requests_waiting Number of requests waiting to be processed.
# TYPE num_requests_waiting gauge
num_requests_waiting{model_name="meta/llama-3.1-8b-instruct"} 0.0
# HELP num_request_max Max number of concurrently running requests.
# TYPE num_request_max gauge
num_request_max{model_name="meta/llama-3.1-8b-instruct"} 64.0
# HELP gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE gpu_cache_usage_perc gauge
gpu_cache_usage_perc{model_name="meta/llama-3.1-8b-instruct"} 0.0002848191398461977
# HELP prompt_tokens_total Number of prefill tokens processed.
# TYPE prompt_tokens_total counter
prompt_tokens_total{model_name="meta/llama-3.1-8b-instruct"} 109.0
# HELP generation_tokens_total Number of generation tokens processed.
# TYPE generation_tokens_total counter
generation_tokens_total{model_name="meta/llama-3.1-8b-instruct"} $tokens
# HELP time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE time_to_first_token_seconds histogram
time_to_first_token_seconds_bucket{le="0.02",model_name="meta/llama-3.1-8b-instruct"} 2.0
time_to_first_token_seconds_bucket{le="+Inf",model_name="meta/llama-3.1-8b-instruct"} 5.0
time_to_first_token_seconds_count{model_name="meta/llama-3.1-8b-instruct"} 5.0
time_to_first_token_seconds_sum{model_name="meta/llama-3.1-8b-instruct"} 0.6119842529296875
# HELP request_success_total Count of successful requests.
# TYPE request_success_total counter
request_success_total{model_name="meta/llama-3.1-8b-instruct"} 5.0
""")

# vLLM's own names (`vllm:` prefix, model_name and engine labels, counters with _created
# lines), as a vLLM-based NIM or several API processes export them: no process metrics there.
VLLM = Template("""\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta/llama-3.1-8b-instruct"} $running
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta/llama-3.1-8b-instruct"} 0.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="meta/llama-3.1-8b-instruct"} $tokens
vllm:generation_tokens_created{engine="0",model_name="meta/llama-3.1-8b-instruct"} $created
""")

# llama.cpp's /metrics (it adds an answer to the counter when the answer ends; /slots has the rest).
LLAMA_CPP = Template("""\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 240
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total $tokens
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing $running
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
""")

STARTED = 1.7303128549e09  # one NIM process's process_start_time_seconds
WATCH_LINE = re.compile(r"^(?P<label>.+?): (?P<tokens>\d+) tokens generated in \d+\.\d s, "
                        r"(?P<running>\d+) request\(s\) running at the end → "
                        r"(?P<verdict>still generating|idle)$", re.M)  # as the notebook tests read it


class ScriptedServer:
    """A real HTTP server on 127.0.0.1: `routes` maps a path to a function of how often that
    path was asked (0, 1, ...) that returns the body; other paths answer 404."""

    def __init__(self, routes: dict[str, Callable[[int], str]]):
        hits = dict.fromkeys(routes, 0)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path not in routes:
                    self.send_error(404)
                    return
                body = routes[self.path](hits[self.path]).encode()
                hits[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.settings = ConnectionSettings(
            f"http://127.0.0.1:{self.server.server_address[1]}/v1", WORKSHOP_MODEL)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    made = []

    def make(routes):
        made.append(ScriptedServer(routes))
        return made[-1].settings

    yield make
    for server in made:
        server.close()


def nim(tokens, running, started=lambda n: STARTED):
    """A NIM whose n-th metrics read shows tokens[n] and running[n] (the last ones repeat)."""
    def dump(n):
        return NIM.substitute(tokens=at(tokens, n), running=at(running, n), started=started(n))
    return {"/v1/metrics": dump}


def at(values, n):
    return values[min(n, len(values) - 1)] if isinstance(values, list) else values


def fake_time():
    """A clock no real time passes on: only the watch's sleeps move it."""
    now = [0.0]
    return {"clock": lambda: now[0], "sleep": lambda s: now.__setitem__(0, now[0] + s)}


# ── a NIM after Stop ───────────────────────────────────────────────────────────────────


def test_a_still_counter_means_stopped_even_with_a_stale_running_gauge_of_1(serve):
    # vLLM aborted the request, generated 12 more tokens on its way out, then stepped no more:
    # its running gauge still says 1.
    reading = read_activity(serve(nim(tokens=4000.0, running=1.0)))
    assert (reading.tokens_generated, reading.requests_running, reading.instance) == (4000, 1, STARTED)
    after = server_after_stop(serve(nim(tokens=[4000.0, 4012.0], running=1.0)), **fake_time())
    assert after.stopped is True and after.in_flight == 1
    assert after.settled_s == pytest.approx(0.1) and after.tokens_generated == 0
    line = Turn("p", outcome="stopped", after_stop=after).server_line()
    assert line == ("server stopped generating: its token counter stood still from 0.1 s after "
                    "Stop (0 more tokens in 1.4 s), though it still lists 1 request(s) running: "
                    "that running-requests gauge lags (vLLM inside a NIM updates it only on its "
                    "next engine step)"), line


def test_a_moving_counter_means_still_generating(serve):
    settings = serve(nim(tokens=[4000.0 + 20 * n for n in range(40)], running=1.0))
    after = server_after_stop(settings, seconds=1.5, **fake_time())
    assert after.stopped is False and after.settled_s is None and after.tokens_generated == 300
    assert after.summary() == ("server STILL GENERATING: 300 more tokens in the 1.5 s after Stop, "
                               "1 request(s) running")
    watch = watch_server(serve(nim(tokens=[4000.0 + 50 * n for n in range(40)], running=1.0)),
                         seconds=2, verbose=False, **fake_time())
    assert watch.generating is True
    assert WATCH_LINE.fullmatch(watch.summary())["verdict"] == "still generating"


def test_a_server_idle_from_the_start(serve, capsys):
    settings = serve(nim(tokens=4000.0, running=0.0))
    after = server_after_stop(settings, seconds=1.5, **fake_time())
    assert after.stopped is True and after.settled_s == 0 and after.in_flight == 0
    assert after.summary() == ("server stopped generating: its token counter stood still from "
                               "0.0 s after Stop (0 more tokens in 1.5 s), no request running")
    watch_server(settings, seconds=2, label="after stream.close()", **fake_time())
    printed = capsys.readouterr().out.strip()
    assert printed == ("after stream.close(): 0 tokens generated in 2.0 s, 0 request(s) running "
                       "at the end → idle")


def test_a_watch_with_a_stale_gauge_says_idle_and_that_the_gauge_lags(serve):
    watch = watch_server(serve(nim(tokens=[4000.0, 4007.0], running=1.0)), seconds=2,
                         label="after the client hung up", verbose=False, **fake_time())
    assert watch.generating is False and watch.requests_running == 1
    first, note = watch.summary().split("\n")
    assert WATCH_LINE.fullmatch(first).groups() == ("after the client hung up", "7", "1", "idle")
    assert note == ("  (1 request(s) listed as running, yet no token generated: that "
                    "running-requests gauge lags (vLLM inside a NIM updates it only on its next "
                    "engine step))")


# ── llama.cpp's format ─────────────────────────────────────────────────────────────────


def test_llama_cpp_counter_and_slots_still_give_the_verdicts(serve):
    idle = serve({"/metrics": lambda n: LLAMA_CPP.substitute(tokens=158, running=0),
                  "/slots": lambda n: "[]"})
    after = server_after_stop(idle, seconds=1.5, **fake_time())
    assert after.stopped is True and after.in_flight == 0 and after.tokens_then == 158
    # an answer in progress: the counter stands still, its slot's tokens grow
    busy_slot = [{"id": 0, "id_task": 7, "is_processing": True}]
    busy = serve({"/metrics": lambda n: LLAMA_CPP.substitute(tokens=158, running=1),
                  "/slots": lambda n: json.dumps([{**busy_slot[0], "next_token": [{"n_decoded": 3 * n}]}])})
    watch = watch_server(busy, seconds=2, verbose=False, **fake_time())
    assert watch.generating is True and watch.requests_running == 1 and watch.readings[0].instance is None
    assert WATCH_LINE.fullmatch(watch.summary())["verdict"] == "still generating"


# ── several replicas behind one address ────────────────────────────────────────────────


def test_readings_from_two_replicas_get_no_verdict(serve):
    # each read lands on another replica: other start time, other counter (standing still)
    replicas = nim(tokens=[4000.0, 9000.0] * 20, running=0.0,
                   started=lambda n: STARTED + 600 * (n % 2))
    after = server_after_stop(serve(replicas), seconds=1.5, **fake_time())
    assert after.stopped is None and "2 different server processes" in after.caveat
    assert after.summary().startswith("server: no verdict after Stop: the readings came from 2 "
                                      "different server processes")
    watch = watch_server(serve(replicas), seconds=2, label="gone", verbose=False, **fake_time())
    assert watch.generating is None and not WATCH_LINE.search(watch.summary())
    assert watch.summary() == ("gone: no verdict: the readings came from 2 different server "
                               "processes (each reports its own start time), as when several "
                               "replicas share one address.")


def vllm(tokens, created=None):
    """vLLM's dump; without `created`, also without the _created line (no identity at all)."""
    text = VLLM.substitute(tokens=tokens, running=0.0, created=created)
    return text if created else "".join(line for line in text.splitlines(keepends=True)
                                        if "_created" not in line)


def test_a_counter_that_goes_backwards_comes_from_another_server(serve):
    # vLLM's names, no process metrics: the counter's _created line tells the replicas apart ...
    two = {"/metrics": lambda n: vllm([5000.0, 3000.0][n % 2], created=STARTED + n % 2)}
    assert "2 different server processes" in server_after_stop(serve(two), **fake_time()).caveat
    # ... and without any identity, a counter going backwards does
    plain = {"/metrics": lambda n: vllm(5000.0 if n < 3 else 3000.0)}
    after = server_after_stop(serve(plain), seconds=1.5, **fake_time())
    assert after.stopped is None
    assert after.caveat == ("the token counter went backwards (5000 → 3000), so the readings came "
                            "from different servers (replicas behind one address, or a restart)")


# ── other users on a shared NIM ────────────────────────────────────────────────────────


def test_more_requests_running_than_yours_gets_no_verdict(serve):
    shared = serve(nim(tokens=[4000.0 + 20 * n for n in range(40)], running=3.0))
    after = server_after_stop(shared, seconds=1.5, **fake_time())
    assert after.stopped is None
    assert after.summary() == ("server: no verdict after Stop: its token counter moved 300 in 1.5 s "
                               "with 3 requests running, more than your 1, so other users' requests "
                               "count in it too and it cannot tell yours from theirs")
    watch = watch_server(shared, seconds=2, label="connected", verbose=False, **fake_time())
    assert watch.generating is True and watch.summary().startswith("connected: no verdict: ")
    # the same readings, with three requests of ours: they can all be ours
    assert watch_server(shared, seconds=2, verbose=False, ours=3, **fake_time()).caveat is None


def test_tokens_moving_before_your_request_get_no_verdict_unless_the_counter_stands_still(serve):
    busy = serve(nim(tokens=[4000.0 + 20 * n for n in range(80)], running=1.0))
    assert server_busy(busy, sleep=lambda s: None) is True  # others generate before we send
    after = server_after_stop(busy, seconds=1.5, busy_before=True, **fake_time())
    assert after.stopped is None and after.caveat.endswith(
        "but it was already generating before your request, so other users' requests count in "
        "it too and it cannot tell yours from theirs")
    # a counter standing still is a verdict whoever else uses the server
    quiet = serve(nim(tokens=[4000.0, 4010.0], running=1.0))
    assert server_busy(quiet, sleep=lambda s: None) is True
    assert server_busy(quiet, sleep=lambda s: None) is False
    assert server_after_stop(quiet, busy_before=True, **fake_time()).stopped is True


def test_a_server_without_metrics_is_said_so(serve):
    hosted_like = serve({})  # every path 404, as the hosted catalog's /metrics
    assert server_busy(hosted_like) is None
    after = server_after_stop(hosted_like, **fake_time())
    assert after.stopped is None and after.seconds == 0
    assert Turn("p", outcome="stopped", after_stop=after).server_line() == (
        "server: does not report what it is doing (the hosted catalog keeps that to itself)")
