"""The pre-flight rows for what the lessons rely on, against the real offline server behind small
real HTTP proxies that each reproduce one fault a server or gateway can have: it ignores
response_format, it follows only NIM 1.x's nvext.guided_json, it drops the answer cap, it hides
cached tokens, it does not pass a closed stream on. And .env settings reach the pre-flight: the
key only in .env, in front of a server that answers 401 without it."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from helpers.settings import OFFLINE_MODEL_ID, load_settings
from llm_kit.preflight.checks import notebook_llm
from llm_kit.preflight.table import FAIL, PASS, WARN

from support.preflight import FAULT_RUN, assert_only_red, run_in_process, table_rows

KEY = "test-only-key-0123456789"
CALL_ROWS = ("invoke", "stream", "usage chunk", "batch", "answer cap", "structured",
             "cached tokens", "Stop seen")


@contextlib.contextmanager
def proxy(upstream: str, request: Callable[[dict], dict] | None = None,
          response: Callable[[dict], dict] | None = None, key: str | None = None,
          drain: bool = False):
    """A real HTTP proxy on 127.0.0.1 in front of `upstream` (a server root). `request` rewrites
    each JSON request body, `response` each JSON response and SSE event; with `key`, model calls
    and /v1/models without `Authorization: Bearer <key>` get 401 (counted per method); with
    `drain`, a client that leaves a stream does not stop the server (the proxy reads the answer
    to its end). Yields (base_url, counts)."""
    counts: Counter = Counter()
    draining: list[threading.Thread] = []

    class Forward(BaseHTTPRequestHandler):
        # HTTP/1.1, streams chunked, as model servers send them: a client that closes a stream
        # closes the connection (over HTTP/1.0, requests would keep it open)
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.forward()

        def do_POST(self):
            self.forward()

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if key and (self.command == "POST" or self.path.startswith("/v1/models")):
                if self.headers.get("Authorization") != f"Bearer {key}":
                    counts[f"401 {self.command}"] += 1
                    return self.reply(401, json.dumps({"error": "missing or wrong API key"}).encode(),
                                      "application/json")
                counts["authorised"] += 1
            if body and request:
                body = json.dumps(request(json.loads(body))).encode()
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            with httpx.Client(timeout=120) as client, client.stream(
                    self.command, upstream + self.path, content=body or None, headers=headers) as up:
                kind = up.headers.get("content-type", "")
                if "text/event-stream" in kind:
                    return self.relay_stream(up, kind)
                data = up.read()
                if response and self.command == "POST" and kind.startswith("application/json"):
                    data = json.dumps(response(json.loads(data))).encode()
                self.reply(up.status_code, data, kind)

        def reply(self, status: int, data: bytes, kind: str):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def relay_stream(self, up, kind: str):
            self.send_response(up.status_code)
            self.send_header("Content-Type", kind)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            gone = False
            for line in up.iter_lines():
                if line.startswith("data: {") and response:
                    line = "data: " + json.dumps(response(json.loads(line[6:])))
                if not gone:
                    gone = not self.send_chunk((line + "\n").encode())
                    if gone and not drain:
                        return  # leaving the `with` closes the upstream: the server stops
                    if gone:
                        counts["drained"] += 1
                        draining.append(threading.current_thread())
            if not gone:
                self.send_chunk(b"")

        def send_chunk(self, data: bytes) -> bool:
            """One chunk (b"": the last); False when the client has gone."""
            try:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                return True
            except (BrokenPipeError, ConnectionResetError):
                return False

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", counts
    finally:
        server.shutdown()
        server.server_close()
        for thread in draining:  # leave the server idle for the next test
            thread.join(timeout=120)


def preflight_through(url: str, monkeypatch, capsys, tmp_path) -> tuple[int, dict]:
    code, out = run_in_process(monkeypatch, capsys, tmp_path,
                               {"NIM_BASE_URL": url, "NIM_MODEL": OFFLINE_MODEL_ID}, *FAULT_RUN)
    return code, table_rows(out)


@pytest.fixture
def root(offline_server) -> str:
    return offline_server.base_url.removesuffix("/v1")


def without(*names: str) -> Callable[[dict], dict]:
    def rewrite(body: dict) -> dict:
        return {k: v for k, v in body.items() if k not in names}
    return rewrite


# --- structured output -----------------------------------------------------------------------

def test_a_server_that_ignores_the_schema_turns_structured_red(root, monkeypatch, capsys, tmp_path):
    with proxy(root, request=without("response_format", "nvext")) as (url, _):
        code, rows = preflight_through(url, monkeypatch, capsys, tmp_path)
    assert code == 1
    assert_only_red(rows, "structured", "does not apply a JSON schema")
    assert "response_format json_schema → free text" in rows["structured"][1]
    assert "nvext.guided_json → free text" in rows["structured"][1]


def test_a_server_that_follows_only_nvext_guided_json_warns(root, monkeypatch, capsys, tmp_path):
    def nim_1x(body: dict) -> dict:
        guided = (body.get("nvext") or {}).get("guided_json")
        body = without("response_format", "nvext")(body)
        return {**body, "json_schema": guided} if guided else body

    with proxy(root, request=nim_1x) as (url, _):
        code, rows = preflight_through(url, monkeypatch, capsys, tmp_path)
    assert code == 0, rows
    result, text = rows["structured"]
    assert result == WARN and "nvext.guided_json → {" in text and "structured cells must send" in text


# --- the answer cap --------------------------------------------------------------------------

def test_a_server_that_drops_the_cap_turns_the_cap_row_red(root, monkeypatch, capsys, tmp_path):
    with proxy(root, request=without("max_tokens", "max_completion_tokens")) as (url, _):
        code, rows = preflight_through(url, monkeypatch, capsys, tmp_path)
    assert code == 1
    assert_only_red(rows, "answer cap", "Neither cap holds")


# --- cached tokens ---------------------------------------------------------------------------

def hide_cached_tokens(message: dict) -> dict:
    usage = message.get("usage")
    if isinstance(usage, dict):
        usage.pop("prompt_tokens_details", None)
    return message


def test_a_server_that_hides_cached_tokens_warns_and_passes(root, monkeypatch, capsys, tmp_path):
    with proxy(root, response=hide_cached_tokens) as (url, _):
        code, rows = preflight_through(url, monkeypatch, capsys, tmp_path)
    assert code == 0, rows
    assert rows["cached tokens"][0] == WARN and "not reported" in rows["cached tokens"][1]
    assert all(rows[name][0] == PASS for name in CALL_ROWS if name != "cached tokens")


def test_the_offline_server_reports_the_repeated_prompt_as_cached(root, monkeypatch, capsys, tmp_path):
    with proxy(root) as (url, _):  # the same proxy, rewriting nothing: the row passes
        code, rows = preflight_through(url, monkeypatch, capsys, tmp_path)
    assert code == 0, rows
    assert rows["cached tokens"][0] == PASS and "prompt tokens cached" in rows["cached tokens"][1]
    assert rows["Stop seen"][0] == PASS and "the server stopped" in rows["Stop seen"][1]


# --- Stop seen by the server -----------------------------------------------------------------

def test_a_gateway_that_keeps_reading_after_stop_turns_stop_red(root, monkeypatch, capsys, tmp_path):
    with proxy(root, drain=True) as (url, counts):
        code, rows = preflight_through(url, monkeypatch, capsys, tmp_path)
        assert counts["drained"] >= 1, "the client left the stream early"
    assert code == 1
    assert_only_red(rows, "Stop seen", "does not pass a closed connection on")
    assert "the server went on: +" in rows["Stop seen"][1]


# --- .env reaches the pre-flight -------------------------------------------------------------

def write_dotenv(folder, url: str, key: str | None) -> None:
    lines = [f"NIM_BASE_URL={url}", f"NIM_MODEL={OFFLINE_MODEL_ID}",
             "NVIDIA_USAGE_TELEMETRY_ENABLED=0"] + ([f"NVIDIA_API_KEY={key}"] if key else [])
    (folder / ".env").write_text("\n".join(lines) + "\n")


def test_the_key_only_in_dotenv_reaches_every_call(root, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("NVIDIA_USAGE_TELEMETRY_ENABLED", raising=False)
    with proxy(root, key=KEY) as (url, counts):
        write_dotenv(tmp_path, url, KEY)
        code, out = run_in_process(monkeypatch, capsys, tmp_path, {}, *FAULT_RUN)
        rows = table_rows(out)
        assert code == 0, out
        assert all(rows[name][0] in (PASS, WARN) for name in ("model id", *CALL_ROWS)), rows
        # every model call carried the key (readiness's own model list asks without it: it
        # then passes on the health probe alone)
        assert counts["authorised"] > 10 and counts["401 POST"] == 0, counts
        # what ChatNVIDIA reads from the process: the telemetry switch, from .env
        assert os.environ["NVIDIA_USAGE_TELEMETRY_ENABLED"] == "0"
        llm = notebook_llm(load_settings())
        assert llm._client.usage_telemetry_enabled is False


def test_without_the_key_the_same_server_answers_401(root, monkeypatch, capsys, tmp_path):
    """The control: the proxy really requires the key, so the test above proves it arrived."""
    monkeypatch.delenv("NVIDIA_USAGE_TELEMETRY_ENABLED", raising=False)
    with proxy(root, key=KEY) as (url, counts):
        write_dotenv(tmp_path, url, None)
        code, out = run_in_process(monkeypatch, capsys, tmp_path, {}, *FAULT_RUN)
    rows = table_rows(out)
    assert code == 1 and counts["401 POST"] > 0
    assert rows["invoke"][0] == FAIL and "401" in rows["invoke"][1]
