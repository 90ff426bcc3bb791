"""The offline server as a learner meets it: the CLI, its process, its slots, its limits.

Every server here is a real llama.cpp server (the xllamacpp wheel) on a free 127.0.0.1 port;
the CLI rows run `llm-kit server ...` as a subprocess, the way a learner types it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from helpers.friendly_errors import explain
from helpers.ports import free_port
from helpers.settings import OFFLINE_MODEL_ID
from llm_kit.offline import server_status
from llm_kit.offline.paths import log_file
from llm_kit.offline.server import stop_server

from support import offline_server_pids, require

LLM_KIT = Path(sys.executable).with_name("llm-kit")
CLI_TIMEOUT_S = 150  # a start on a busy 2-core machine: load, health, warm-up


def kit(*args: str, port: int, env: dict | None = None, timeout_s: float = CLI_TIMEOUT_S):
    """Run `llm-kit server ...` for `port` (via KIT_SERVER_PORT, as the Makefile does)."""
    require(LLM_KIT.is_file(), f"the llm-kit command is not installed next to {sys.executable}")
    environ = dict(os.environ if env is None else env, KIT_SERVER_PORT=str(port))
    return subprocess.run([str(LLM_KIT), "server", *args], env=environ, capture_output=True,
                          text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            host, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                if len(host) == 8:  # IPv4, little-endian
                    addresses.append(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
                else:
                    addresses.append(f"ipv6:{host}")
    return addresses


@pytest.fixture(scope="module")
def cli_server(offline_server):
    """A server started with `llm-kit server start` on its own port; its log as start left it."""
    port = free_port()
    started = kit("start", port=port)
    assert started.returncode == 0, started.stdout + started.stderr
    log_at_ready = log_file(port).read_text(errors="replace")
    yield port, started, log_at_ready
    kit("stop", port=port, timeout_s=60)
    stop_server(port, quiet=True)


@pytest.fixture(scope="module")
def stopped_server(offline_server):
    """A server started, queried and stopped through the CLI; what each step said."""
    port = free_port()
    steps = {"start": kit("start", port=port)}
    assert steps["start"].returncode == 0, steps["start"].stdout + steps["start"].stderr
    steps["pids_running"] = offline_server_pids(port)
    steps["status_running"] = kit("status", port=port, timeout_s=30)
    steps["stop"] = kit("stop", port=port, timeout_s=60)
    steps["status_stopped"] = kit("status", port=port, timeout_s=30)
    yield port, steps
    stop_server(port, quiet=True)


@pytest.mark.timeout(60, func_only=True)
def test_a_second_start_is_refused_naming_the_stop_command(cli_server):
    port, _, _ = cli_server
    again = kit("start", port=port)
    assert again.returncode == 2
    assert "already running" in again.stderr
    assert f"llm-kit server stop --port {port}" in again.stderr
    assert "Traceback" not in again.stderr
    assert len(offline_server_pids(port)) == 1


@pytest.mark.timeout(60, func_only=True)
def test_server_binds_127_0_0_1_only(cli_server):
    port, _, _ = cli_server
    addresses = listening_addresses(port)
    assert addresses, f"nothing listens on port {port}"
    assert set(addresses) == {"127.0.0.1"}


@pytest.mark.timeout(60, func_only=True)
def test_warm_up_ran_before_start_returned(cli_server):
    port, started, log_at_ready = cli_server
    assert "ready" in started.stdout
    # llama-server logs a finished completion as `print_timing ... eval time` and `release`.
    assert "print_timing" in log_at_ready and "eval time" in log_at_ready, log_at_ready[-2000:]
    assert "stop processing" in log_at_ready


@pytest.mark.timeout(60, func_only=True)
def test_at_least_six_parallel_slots(cli_server):
    port, _, _ = cli_server
    root = f"http://127.0.0.1:{port}"
    props = httpx.get(f"{root}/props", timeout=10).json()
    assert props["total_slots"] >= 6
    slots = httpx.get(f"{root}/slots", timeout=10).json()
    assert len(slots) >= 6
    assert all(slot["n_ctx"] >= 2048 for slot in slots)


@pytest.mark.timeout(60, func_only=True)
def test_busy_port_is_reported_clearly(offline_server):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = kit("start", port=port)
    assert done.returncode == 2
    assert f"Port {port}" in done.stderr and "already in use" in done.stderr
    assert "--port" in done.stderr  # says how to pick another port
    assert "Traceback" not in done.stderr
    assert offline_server_pids(port) == []


@pytest.mark.timeout(60, func_only=True)
def test_missing_model_file_is_reported_clearly(offline_server, tmp_path):
    port = free_port()
    missing = tmp_path / "no-such-model.gguf"
    done = kit("start", port=port, env=dict(os.environ, KIT_MODEL_PATH=str(missing)))
    assert done.returncode == 2
    assert "KIT_MODEL_PATH" in done.stderr and str(missing) in done.stderr
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert offline_server_pids(port) == []
    assert not server_status(port).running


@pytest.mark.timeout(60, func_only=True)
def test_status_and_stop_leave_no_orphan_process(stopped_server):
    port, steps = stopped_server
    assert len(steps["pids_running"]) == 1
    assert steps["status_running"].returncode == 0
    assert f"pid {steps['pids_running'][0]}" in steps["status_running"].stdout
    assert steps["stop"].returncode == 0 and "Stopped" in steps["stop"].stdout
    assert steps["status_stopped"].returncode == 3
    assert "not running" in steps["status_stopped"].stdout
    assert offline_server_pids(port) == []
    assert listening_addresses(port) == []


@pytest.mark.timeout(60, func_only=True)
def test_request_to_a_stopped_server_names_the_start_command(stopped_server):
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    port, _ = stopped_server
    base_url = f"http://127.0.0.1:{port}/v1"
    llm = ChatNVIDIA(base_url=base_url, model=OFFLINE_MODEL_ID, timeout=20)
    with pytest.raises(Exception) as info:
        llm.invoke("Hello?")
    message = explain(info.value, base_url=base_url)
    assert "\n" not in message and "Traceback" not in message
    assert "No model server answered" in message
    assert "make server" in message  # the start command


@pytest.mark.timeout(420, func_only=True)
def test_thirty_concurrent_streams_all_finish(offline_server):
    """30 learners at once on 6 slots: every stream ends with a finish_reason, none cut off."""
    from openai import OpenAI

    client = OpenAI(base_url=offline_server.base_url, api_key="offline", timeout=300,
                    max_retries=0)
    results: dict[int, dict] = {}

    def learner(i: int) -> None:
        record = {"text": "", "finish_reason": None, "error": None}
        try:
            stream = client.chat.completions.create(
                model=OFFLINE_MODEL_ID, max_tokens=16, temperature=0, stream=True,
                messages=[{"role": "user", "content": f"Name a colour. ({i})"}])
            for chunk in stream:
                for choice in chunk.choices:
                    record["text"] += choice.delta.content or ""
                    record["finish_reason"] = choice.finish_reason or record["finish_reason"]
        except Exception as exc:  # noqa: BLE001 - reported below, per learner
            record["error"] = f"{type(exc).__name__}: {exc}"
        results[i] = record

    threads = [threading.Thread(target=learner, args=(i,), daemon=True) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=400)
    assert not any(t.is_alive() for t in threads), "some streams never ended"
    assert len(results) == 30
    problems = {i: r for i, r in results.items() if r["error"] or r["finish_reason"] is None}
    assert not problems
    assert all(r["finish_reason"] in ("stop", "length") for r in results.values())
    assert all(r["text"] for r in results.values())


def batch_seconds(base_url: str, rounds: int) -> list[float]:
    """Wall time of `rounds` ChatNVIDIA batches of one prompt per slot, one after another
    (the client is warmed first, so only the server can be cold)."""
    import time

    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    llm = ChatNVIDIA(base_url=base_url, model=OFFLINE_MODEL_ID, temperature=0,
                     max_completion_tokens=48)
    llm.invoke("Hi", max_completion_tokens=1)
    topics = ("a kettle", "a river", "a violin", "a glacier", "a compass", "a lantern")
    times = []
    for round_ in range(rounds):  # new prompts each round: a prompt-cache hit is no warm slot
        prompts = [f"In sentence number {round_}, say what {topic} is." for topic in topics]
        start = time.perf_counter()
        llm.batch(prompts)
        times.append(time.perf_counter() - start)
    return times


@pytest.mark.timeout(400, func_only=True)
def test_the_first_batch_after_start_is_as_fast_as_later_ones(offline_server):
    """The warm-up uses every slot, so a learner's first `batch` is not the slow one."""
    import statistics

    from llm_kit.offline import start_server

    ratios = []
    for _ in range(2):  # two fresh servers: one lucky start proves nothing
        port = free_port()
        start_server(port=port, quiet=True)
        try:
            first, *later = batch_seconds(f"http://127.0.0.1:{port}/v1", rounds=4)
        finally:
            stop_server(port, quiet=True)
        ratios.append(first / statistics.median(later))
    # A cold first batch took ~2.5x the later ones; 1.6 leaves room for this shared machine's
    # noise (warm starts measured 1.0-1.4 here) and still fails a cold start.
    assert statistics.median(ratios) <= 1.6, f"first batch / median of the next three: {ratios}"
