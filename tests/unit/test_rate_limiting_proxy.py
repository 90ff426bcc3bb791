"""The teaching fault injector in front of a stub server: which model calls it answers 429
(the next n, every n-th), the Retry-After it sends, and that it passes everything else on."""

from __future__ import annotations

import http.server
import threading

import httpx
import pytest

from helpers.fault_injection import RateLimitingProxy
from helpers.ports import LOOPBACK


@pytest.fixture
def upstream():
    """A stub model server on 127.0.0.1 that answers every request 200 and counts the POSTs."""
    seen = {"posts": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen["posts"] += 1
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}/v1", seen
    server.shutdown()
    server.server_close()


def test_every_nth_model_call_is_refused_with_retry_after(upstream):
    base_url, seen = upstream
    with RateLimitingProxy(base_url, reject=1, reject_every=3, retry_after_s=2) as proxy:
        with httpx.Client() as client:
            posts = [client.post(f"{proxy.base_url}/chat/completions", json={}) for _ in range(7)]
            assert client.get(f"{proxy.base_url}/models").status_code == 200, "GETs pass"
    # call 1: the one armed rejection; calls 3 and 6: every third
    assert [r.status_code for r in posts] == [429, 200, 429, 200, 200, 429, 200]
    assert all(r.headers["Retry-After"] == "2" for r in posts if r.status_code == 429)
    assert (proxy.rejected, proxy.forwarded, seen["posts"]) == (3, 4, 4)
