"""The teaching fault injector in front of a stub server: which model calls it answers 429
(the next n, every n-th, those past a window's limit), the Retry-After it sends, which it answers
400 (those holding a chosen text), and that it passes everything else on."""

from __future__ import annotations

import email.utils
import http.server
import threading
import time

import httpx
import pytest

from helpers.fault_injection import RateLimitingProxy
from helpers.ports import LOOPBACK


@pytest.fixture
def upstream():
    """A stub model server on 127.0.0.1 that answers every request 200 (503 on a path ending in
    /busy) and counts the POSTs."""
    seen = {"posts": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen["posts"] += 1
            body = b'{"ok": true}'
            self.send_response(503 if self.path.endswith("/busy") else 200)
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
    assert proxy.answered == 4, "every call passed on was answered 200"


def test_answered_counts_only_what_the_server_behind_answered(upstream):
    base_url, seen = upstream
    with RateLimitingProxy(base_url, reject=1) as proxy:
        with httpx.Client() as client:
            codes = [client.post(f"{proxy.base_url}/{path}", json={}).status_code
                     for path in ("chat/completions", "chat/completions", "busy", "chat/completions")]
            assert client.get(f"{proxy.base_url}/models").status_code == 200, "GETs are not counted"
    assert codes == [429, 200, 503, 200]
    assert (proxy.rejected, proxy.forwarded, proxy.answered, seen["posts"]) == (1, 3, 2, 3)


def test_a_window_passes_on_its_calls_then_answers_429_until_it_ends(upstream):
    base_url, seen = upstream
    with RateLimitingProxy(base_url, calls_per_window=2, window_s=30) as proxy:
        with httpx.Client() as client:
            posts = [client.post(f"{proxy.base_url}/completions", json={}) for _ in range(5)]
            assert client.get(f"{proxy.base_url}/models").status_code == 200, "GETs are not counted"
            assert client.post(f"{proxy.base_url}/completions", json={}).status_code == 429
    assert [r.status_code for r in posts] == [200, 200, 429, 429, 429]
    # Retry-After: the whole seconds left in the 30 s window that the first call opened
    waits = [int(r.headers["Retry-After"]) for r in posts if r.status_code == 429]
    assert all(28 <= wait <= 30 for wait in waits), waits
    assert (proxy.rejected, proxy.forwarded, seen["posts"]) == (4, 2, 2)


def test_the_next_window_opens_once_the_last_has_ended(upstream):
    base_url, seen = upstream
    window_s = 1.5  # long enough for two calls on a busy machine
    with RateLimitingProxy(base_url, calls_per_window=1, window_s=window_s, retry_after_date=True) as proxy:
        with httpx.Client() as client:
            first = client.post(f"{proxy.base_url}/completions", json={})
            opened_by = time.monotonic()  # the window opened before the first call was answered
            refused = client.post(f"{proxy.base_url}/completions", json={})
            # what is left of the window, in whole seconds (here as an HTTP date, read at once)
            asked = email.utils.parsedate_to_datetime(refused.headers["Retry-After"]).timestamp()
            ahead = asked - time.time()
            time.sleep(max(0.0, window_s + 0.1 - (time.monotonic() - opened_by)))  # the window has ended
            later = [client.post(f"{proxy.base_url}/completions", json={}) for _ in range(2)]
    assert [r.status_code for r in (first, refused, *later)] == [200, 429, 200, 429]
    assert -1 <= ahead <= 3, refused.headers["Retry-After"]
    assert (proxy.rejected, proxy.forwarded, seen["posts"]) == (2, 2, 2)


def test_armed_rejections_come_before_the_window_and_use_no_call_of_it(upstream):
    base_url, seen = upstream
    with RateLimitingProxy(base_url, reject=1, retry_after_s=5, calls_per_window=1, window_s=30) as proxy:
        with httpx.Client() as client:
            posts = [client.post(f"{proxy.base_url}/completions", json={}) for _ in range(3)]
    assert [r.status_code for r in posts] == [429, 200, 429]
    assert posts[0].headers["Retry-After"] == "5" and 28 <= int(posts[2].headers["Retry-After"]) <= 30
    assert (proxy.rejected, proxy.forwarded, seen["posts"]) == (2, 1, 1)


def test_a_request_holding_the_chosen_text_is_answered_400_and_never_reaches_the_server(upstream):
    base_url, seen = upstream
    with RateLimitingProxy(base_url, reject=1, bad_request_if="Atlantis") as proxy:
        with httpx.Client() as client:
            def ask(question):
                return client.post(f"{proxy.base_url}/chat/completions",
                                   json={"messages": [{"role": "user", "content": question}]})

            posts = [ask(q) for q in ("Capital of Atlantis?", "Capital of Texas?", "Capital of Ohio?",
                                      "Where is Atlantis?")]
            assert client.get(f"{proxy.base_url}/models?q=Atlantis").status_code == 200, "GETs pass"
    # the 400s come first and use no armed rejection: the one 429 goes to the first other call
    assert [r.status_code for r in posts] == [400, 429, 200, 400]
    refused = posts[0].json()
    assert refused["status"] == 400 and refused["title"] == "Bad Request", refused
    assert "'Atlantis'" in refused["detail"] and "Retry-After" not in posts[0].headers
    assert (proxy.bad_requests, proxy.rejected, proxy.forwarded, proxy.answered, seen["posts"]) == (
        2, 1, 1, 1, 1)
