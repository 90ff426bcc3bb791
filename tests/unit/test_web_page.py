"""Notebook 10's web page without a browser: its HTML escapes what it is given and holds the
reader the notebook writes; its routes serve the page and keep the timings a page reports."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest
from fastapi import FastAPI

from helpers.background_server import BackgroundServer
from helpers.web_page import add_stream_page, jupyter_base_url, relative_to, stream_page_html

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
        # relative addresses: the page works directly and under a proxy's prefix alike
        assert 'const STREAM_URL = "ask", REPORT_URL = "chat/timings"' in response.text
        asked = time.monotonic()
        assert page.opened_to_ask == 0
        assert page.wait_for_report(opened_within_s=0.2, reported_within_s=60) is None
        assert time.monotonic() - asked < 30, "a page nobody opened is not waited for"
        assert httpx.get(page.url(server.url) + "?ask=1", timeout=10).status_code == 200
        assert page.opened_to_ask == 1, "a page opened to ask by itself is counted"
        reported = httpx.post(f"{server.url}/chat/timings", timeout=10,
                              json={"ttft_ms": 12.5, "total_ms": 80, "server_ttft_ms": 9, "characters": 40,
                                    "chunks": 8, "state": "done"})
        assert reported.json() == {"received": 1}
        refused = httpx.post(f"{server.url}/chat/timings", json={"ttft_ms": "soon"}, timeout=10)
        assert refused.status_code == 422
    assert [(r.ttft_ms, r.chunks, r.state) for r in page.reports] == [(12.5, 8, "done")]


def test_a_page_opened_to_ask_is_waited_for_until_it_reports():
    app = FastAPI()
    page = add_stream_page(app, READER, stream_url="/ask")
    timing = {"ttft_ms": 30, "total_ms": 90, "server_ttft_ms": 20, "characters": 9, "chunks": 3,
              "state": "done"}
    with BackgroundServer(app) as server:
        httpx.get(page.url(server.url) + "?ask=1", timeout=10)  # a browser opened the frame

        def report_later():
            time.sleep(0.5)
            httpx.post(f"{server.url}/timings", json=timing, timeout=10)

        threading.Thread(target=report_later).start()
        report = page.wait_for_report(opened_within_s=1, reported_within_s=10)
    assert report is not None and report.state == "done" and report.ttft_ms == 30


def test_addresses_on_the_page_are_relative_to_it():
    assert relative_to("/", "/bridged") == "bridged"
    assert relative_to("/", "/timings") == "timings"
    assert relative_to("/chat", "/chat/timings") == "chat/timings"
    assert relative_to("/chat/", "/chat/timings") == "timings"
    assert relative_to("/chat/", "/bridged") == "../bridged"
    assert relative_to("/", "http://elsewhere/stream") == "http://elsewhere/stream"


def test_the_jupyter_address_is_the_hubs_prefix_or_the_parent_servers_base_url(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert jupyter_base_url() == "/user/ada/"
    page = add_stream_page(FastAPI(), READER)
    assert page.url_in_jupyter(8123) == "/user/ada/proxy/127.0.0.1:8123/"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    assert jupyter_base_url() is None, "no Jupyter server started this process"
    # a kernel is its Jupyter server's child: the server's runtime file names the parent's pid
    (tmp_path / f"jpserver-{os.getppid()}.json").write_text(json.dumps({
        "base_url": "/lab-base/", "pid": os.getppid(), "port": 8888, "url": "http://127.0.0.1:8888/lab-base/",
        "hostname": "127.0.0.1", "secure": False, "token": "", "root_dir": str(tmp_path), "version": "2"}))
    assert jupyter_base_url() == "/lab-base/"
    assert page.url_in_jupyter(8123) == "/lab-base/proxy/127.0.0.1:8123/"
