"""The fault matrix, the rows that provoke a fault on a real llama-server, directly and (the rows
a notebook shows) in a real kernel; and the rate-limiting proxy the 429 row puts in front of it."""

from __future__ import annotations

import httpx
import pytest

from helpers import stream_print
from helpers.fault_injection import RateLimitingProxy

from support.faults import (
    SERVER_ROWS,
    TIMEOUT_S,
    chat,
    check_row,
    check_row_in_a_kernel,
    kernel_rows,
    row_params,
)


@pytest.mark.parametrize("row", row_params(SERVER_ROWS))
def test_fault(row, request):
    check_row(row, request)


@pytest.mark.timeout(240, func_only=True)  # the row again, then a kernel start on 2 busy cores
@pytest.mark.parametrize("row", kernel_rows(SERVER_ROWS))
def test_fault_in_a_kernel(row, request, tmp_path):
    check_row_in_a_kernel(row, request, tmp_path)


@pytest.mark.timeout(120, func_only=True)
def test_rate_limiting_proxy_rejects_calls_not_probes_and_streams_through(offline_server):
    with RateLimitingProxy(offline_server.base_url, reject=2, retry_after_s=3) as limiter:
        root = limiter.base_url.removesuffix("/v1")
        assert httpx.get(root + "/health", timeout=TIMEOUT_S).status_code == 200  # GETs pass
        refused = httpx.post(limiter.base_url + "/chat/completions", json={}, timeout=TIMEOUT_S)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
        assert refused.json()["title"] == "Too Many Requests"
        with pytest.raises(Exception, match="429"):
            chat(limiter.base_url).invoke("Hello?")
        streamed = stream_print(chat(limiter.base_url, max_completion_tokens=24).stream(
            "Count from one to twenty."), display="none")
        assert (limiter.rejected, limiter.forwarded) == (2, 1)
    assert streamed.completed and streamed.content_chunks >= 3
    assert len(set(streamed.arrivals_s)) >= 3, "the proxy passes a stream on as it arrives"
