"""Notebook 10's web page without a browser: its HTML escapes what it is given and holds the
reader the notebook writes; its routes serve the page and keep the timings a page reports."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from helpers.background_server import BackgroundServer
from helpers.web_page import add_stream_page, stream_page_html

READER = "async function readStream(url, body, onText, signal) { return null; }"


def test_page_escapes_what_it_is_given_and_reads_the_stream_with_a_reader():
    html = stream_page_html(READER, "/my stream", "/timings", title="<b>x</b>",
                            prompt="</textarea><script>", max_tokens=7)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "</textarea><script>" not in html
    assert 'const STREAM_URL = "/my stream"' in html and 'value="7"' in html
    assert READER in html and "readStream(STREAM_URL, body, onText, controller.signal)" in html
    assert "performance.now()" in html
    assert "innerHTML" not in html, "the answer must be added as text, never parsed as HTML"


def test_a_reader_that_would_end_the_script_is_refused():
    with pytest.raises(ValueError, match="</script>"):
        stream_page_html("// </script><script>alert(1)")


def test_routes_serve_the_page_and_keep_the_timings_a_page_reports():
    app = FastAPI()
    page = add_stream_page(app, READER, stream_url="/ask", path="/chat")
    with BackgroundServer(app) as server:
        response = httpx.get(page.url(server.url), timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert 'const STREAM_URL = "/ask", REPORT_URL = "/chat/timings"' in response.text
        reported = httpx.post(f"{server.url}/chat/timings", timeout=10,
                              json={"ttft_ms": 12.5, "total_ms": 80, "server_ttft_ms": 9, "characters": 40,
                                    "chunks": 8, "state": "done"})
        assert reported.json() == {"received": 1}
        refused = httpx.post(f"{server.url}/chat/timings", json={"ttft_ms": "soon"}, timeout=10)
        assert refused.status_code == 422
    assert [(r.ttft_ms, r.chunks, r.state) for r in page.reports] == [(12.5, 8, "done")]
