"""A teaching fault injector: a tiny HTTP proxy that answers some model calls with
429 Too Many Requests, the way a rate-limited API does, and passes everything else on.

It sits on 127.0.0.1 between a notebook and the real model server, so a lesson on retries or
on `return_exceptions` meets a real HTTP 429 on any backend. For lessons only.
"""

from __future__ import annotations

import email.utils
import http.server
import json
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
    `rejected` and `forwarded` count what it did; `reject_next(n)` arms it again. Each 429
    carries `Retry-After: <retry_after_s>`, or with `retry_after_date` the same moment as an
    HTTP date (RFC 9110 allows both). With `reject_every=n`, every n-th model call is answered
    429 as well (calls n, 2n, 3n, ...), as a rate limit refuses some calls of a steady stream.
    """

    def __init__(self, upstream_base_url: str, reject: int = 0, retry_after_s: int = 1,
                 retry_after_date: bool = False, reject_every: int = 0):
        parts = urlsplit(upstream_base_url)
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.path_prefix = parts.path.rstrip("/")
        self.retry_after_s = retry_after_s
        self.retry_after_date = retry_after_date
        self.reject_every = reject_every
        self.rejected = 0
        self.forwarded = 0
        self._calls = 0
        self._to_reject = reject
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._client = None

    @property
    def base_url(self) -> str:
        """Use this as the model's base_url (same path as the upstream's, e.g. /v1)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path_prefix}"

    def retry_after(self) -> str:
        """The Retry-After value for a 429 sent now."""
        if not self.retry_after_date:
            return str(self.retry_after_s)
        return email.utils.formatdate(time.time() + self.retry_after_s, usegmt=True)

    def reject_next(self, n: int) -> None:
        """Answer the next n model calls with 429."""
        with self._lock:
            self._to_reject = n

    def _take_rejection(self) -> bool:
        with self._lock:
            self._calls += 1
            nth = self.reject_every > 0 and self._calls % self.reject_every == 0
            if self._to_reject > 0 or nth:
                self._to_reject -= 1 if self._to_reject > 0 else 0
                self.rejected += 1
                return True
            self.forwarded += 1
            return False

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
            if self.command == "POST" and proxy._take_rejection():
                return self._too_many_requests()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
            with proxy._client.stream(self.command, proxy.upstream_origin + self.path,
                                      content=body, headers=headers) as upstream:
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

        def _too_many_requests(self) -> None:
            body = json.dumps({"status": 429, "title": "Too Many Requests",
                               "detail": "rate limit reached (a teaching fault injector)"}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", proxy.retry_after())
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _relay

        def log_message(self, *args) -> None:
            pass

    return Handler
