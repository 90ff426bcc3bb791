"""`llm-kit preflight` on the real offline server: every row passes (through the real CLI), and
real faults turn exactly their row red: a wrong model id, a server that drops the usage chunk (a
small HTTP proxy in front of the offline server strips it from the stream), and SIGTERM stops the
server the check started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from helpers.ports import free_port, port_is_free, port_open
from helpers.settings import OFFLINE_MODEL_ID
from llm_kit.preflight.checks import CAP
from llm_kit.preflight.table import PASS, SKIP, WIDTH

from support.preflight import (
    BACKEND_VARS,
    FAULT_RUN,
    LLM_KIT,
    ROWS,
    assert_only_red,
    run_in_process,
    table_rows,
    without_usage,
)


def test_every_row_passes_on_the_offline_server_through_the_cli(offline_server, tmp_path):
    env = dict(os.environ, NIM_BASE_URL=offline_server.base_url, NIM_MODEL=OFFLINE_MODEL_ID)
    env.pop("NVIDIA_API_KEY", None)
    done = subprocess.run([LLM_KIT, "preflight"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(len(line) <= WIDTH for line in done.stdout.splitlines()), "the table must fit 100 columns"
    rows = table_rows(done.stdout)
    assert list(rows) == ROWS
    assert {name: result for name, (result, _) in rows.items()} == {
        **{name: PASS for name in ROWS[:-1]}, "NIM cache": SKIP}
    assert "skipped: not a compose host" in rows["NIM cache"][1]
    assert f"max_completion_tokens={CAP}:" in rows["answer cap"][1]
    assert "a NIM: ~5x" in rows["batch vs loop"][1] and "a NIM: ~10 ms" in rows["TTFT"][1]
    peak = re.search(r"the server ran up to (\d+) at once", rows["batch vs loop"][1])
    assert peak and int(peak.group(1)) >= 2, "batch's requests must run side by side on the server"
    assert "All 13 checks passed, 1 skipped" in done.stdout


# --- real faults -------------------------------------------------------------------------------

def test_a_wrong_model_id_turns_the_model_row_red(offline_server, monkeypatch, capsys, tmp_path):
    code, out = run_in_process(monkeypatch, capsys, tmp_path,
                               {"NIM_BASE_URL": offline_server.base_url,
                                "NIM_MODEL": "meta/llama-3.1-8b-instruct"}, *FAULT_RUN)
    assert code == 1
    rows = table_rows(out)
    assert_only_red(rows, "model id", f"Set NIM_MODEL={OFFLINE_MODEL_ID}")
    assert "meta/llama-3.1-8b-instruct not served" in rows["model id"][1]


@pytest.fixture
def usage_dropping_proxy(offline_server):
    """A real HTTP proxy on 127.0.0.1 in front of the offline server that strips the usage chunk
    from every streamed completion (everything else is forwarded as is)."""
    upstream = offline_server.base_url.removesuffix("/v1")

    class Forward(BaseHTTPRequestHandler):
        # HTTP/1.1, streams chunked, as model servers send them: a client that closes a stream
        # early closes the connection, and the proxy's next write ends the upstream request
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.forward()

        def do_POST(self):
            self.forward()

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            with httpx.Client(timeout=120) as client, client.stream(
                    self.command, upstream + self.path, content=body, headers=headers) as response:
                kind = response.headers.get("content-type", "")
                self.send_response(response.status_code)
                self.send_header("Content-Type", kind)
                self.send_header("Connection", "close")
                if "text/event-stream" not in kind:
                    data = response.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for line in response.iter_lines():
                    kept = without_usage(line)
                    if kept is not None:
                        data = (kept + "\n").encode()
                        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args):
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}/v1"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_a_server_that_drops_the_usage_chunk_turns_the_usage_row_red(
        usage_dropping_proxy, monkeypatch, capsys, tmp_path):
    code, out = run_in_process(monkeypatch, capsys, tmp_path,
                               {"NIM_BASE_URL": usage_dropping_proxy,
                                "NIM_MODEL": OFFLINE_MODEL_ID}, *FAULT_RUN)
    assert code == 1
    rows = table_rows(out)
    assert_only_red(rows, "usage chunk", "drops the usage chunk")
    assert "no chunk carried usage" in rows["usage chunk"][1]
    assert rows["stream"][0] == PASS  # the text still streams: only the usage is gone


def test_sigterm_stops_the_offline_server_the_check_started(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in BACKEND_VARS}
    check = subprocess.Popen([LLM_KIT, "preflight", "--server-port", str(port)], env=env,
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not port_open(port) and check.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_open(port), "the check should start the offline server when nothing is configured"
        check.send_signal(signal.SIGTERM)
        out, err = check.communicate(timeout=60)
    finally:
        if check.poll() is None:
            check.kill()
            check.wait()
    assert check.returncode == 130, out + err
    assert "Interrupted" in err
    deadline = time.monotonic() + 15
    while not port_is_free("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert port_is_free("127.0.0.1", port), "the offline server it started must be stopped"
