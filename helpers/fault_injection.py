"""A teaching fault injector: a tiny HTTP proxy that answers some model calls with
429 Too Many Requests, the way a rate-limited API does (or with 400 Bad Request, as a server
refuses input it will never accept), and passes everything else on.

It sits on 127.0.0.1 between a notebook and the real model server, so a lesson on retries or
on `return_exceptions` meets a real HTTP 429 on any backend. For lessons only.
"""

from __future__ import annotations

import email.utils
import http.server
import json
import math
import threading
import time
from urllib.parse import urlsplit

from .ports import LOOPBACK

# Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), and the ones
# the proxy sets itself.
NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                 "te", "trailer", "host", "content-length", "content-encoding"}


class RateLimitingProxy:
    """Forward requests to the server at `upstream_base_url`, except that the next `reject`
    model calls (POST requests) are answered with HTTP 429 and never reach it.

    >>> with RateLimitingProxy(settings.base_url, reject=2) as limiter:
    ...     flaky = ChatNVIDIA(base_url=limiter.base_url, model=settings.model)
    `rejected` and `forwarded` count what it did, `answered` the forwarded calls that the server
    answered (a 2xx status: a refusal behind the proxy is not counted); `reject_next(n)` arms it
    again. Each 429
    carries `Retry-After: <retry_after_s>`, or with `retry_after_date` the same moment as an
    HTTP date (RFC 9110 allows both). With `reject_every=n`, every n-th model call is answered
    429 as well (calls n, 2n, 3n, ...), as a rate limit refuses some calls of a steady stream.
    With `calls_per_window=n`, at most n model calls are passed on per window of `window_s`
    seconds (a window opens at the first call after the last one ended), as an API limited to
    so many requests a minute does: the rest are answered 429, with Retry-After the whole
    seconds until the window ends.
    With `bad_request_if="text"`, every model call whose request body contains that text is
    answered HTTP 400 Bad Request with a JSON error body, and never reaches the server, as a
    server refuses a request it will never accept (a prompt too long for its context, say):
    sending it again cannot help. Those calls are counted in `bad_requests` and come before
    the 429 rules (they use no armed rejection and no call of a window).
    """

    def __init__(self, upstream_base_url: str, reject: int = 0, retry_after_s: int = 1,
                 retry_after_date: bool = False, reject_every: int = 0, calls_per_window: int = 0,
                 window_s: float = 60.0, bad_request_if: str | None = None):
        parts = urlsplit(upstream_base_url)
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.path_prefix = parts.path.rstrip("/")
        self.retry_after_s = retry_after_s
        self.retry_after_date = retry_after_date
        self.reject_every = reject_every
        self.calls_per_window = calls_per_window
        self.window_s = window_s
        self.bad_request_if = bad_request_if
        self.bad_requests = 0
        self.rejected = 0
        self.forwarded = 0
        self.answered = 0
        self._calls = 0
        self._to_reject = reject
        self._window_ends = 0.0  # monotonic time at which the current window ends
        self._window_calls = 0  # model calls passed on in it
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._client = None

    @property
    def base_url(self) -> str:
        """Use this as the model's base_url (same path as the upstream's, e.g. /v1)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path_prefix}"

    def retry_after(self, seconds: int | None = None) -> str:
        """The Retry-After value for a 429 sent now (`retry_after_s` unless `seconds` is given)."""
        seconds = self.retry_after_s if seconds is None else seconds
        if not self.retry_after_date:
            return str(seconds)
        return email.utils.formatdate(time.time() + seconds, usegmt=True)

    def reject_next(self, n: int) -> None:
        """Answer the next n model calls with 429."""
        with self._lock:
            self._to_reject = n

    def _is_bad_request(self, body: bytes) -> bool:
        """Whether this model call's body holds `bad_request_if` (counted in `bad_requests`)."""
        if not self.bad_request_if or self.bad_request_if.encode() not in body:
            return False
        with self._lock:
            self.bad_requests += 1
        return True

    def _take_rejection(self) -> int | None:
        """None to pass this model call on; else the seconds its 429's Retry-After gives."""
        with self._lock:
            self._calls += 1
            nth = self.reject_every > 0 and self._calls % self.reject_every == 0
            if self._to_reject > 0 or nth:
                self._to_reject -= 1 if self._to_reject > 0 else 0
                self.rejected += 1
                return self.retry_after_s
            if self.calls_per_window > 0:
                now = time.monotonic()
                if now >= self._window_ends:  # the last window is over: this call opens one
                    self._window_ends, self._window_calls = now + self.window_s, 0
                if self._window_calls >= self.calls_per_window:
                    self.rejected += 1
                    return max(1, math.ceil(self._window_ends - now))
                self._window_calls += 1
            self.forwarded += 1
            return None

    def start(self) -> RateLimitingProxy:
        import httpx

        self._client = httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0))
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="rate-limiting-proxy",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> RateLimitingProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _handler_for(proxy: RateLimitingProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.1 with chunked responses, as model servers send streams: a client that closes
        # a stream early closes the connection, and the proxy passes that on to the server.
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "POST" and proxy._is_bad_request(body):
                return self._bad_request()
            if self.command == "POST" and (wait_s := proxy._take_rejection()) is not None:
                return self._too_many_requests(wait_s)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
            with proxy._client.stream(self.command, proxy.upstream_origin + self.path,
                                      content=body, headers=headers) as upstream:
                if self.command == "POST" and 200 <= upstream.status_code < 300:
                    with proxy._lock:
                        proxy.answered += 1
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.items():
                    if name.lower() not in NOT_FORWARDED:
                        self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for piece in upstream.iter_bytes():
                        if piece:
                            self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client left; closing `upstream` stops the server's work too

        def _too_many_requests(self, wait_s: int) -> None:
            body = json.dumps({"status": 429, "title": "Too Many Requests",
                               "detail": "rate limit reached (a teaching fault injector)"}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", proxy.retry_after(wait_s))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _bad_request(self) -> None:
            body = json.dumps({"status": 400, "title": "Bad Request",
                               "detail": f"the request contains {proxy.bad_request_if!r}, which "
                                         "this server never accepts (a teaching fault injector)"})
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body.encode())))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = _relay

        def log_message(self, *args) -> None:
            pass

    return Handler
