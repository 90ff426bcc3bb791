"""A small web page that shows an SSE stream as it arrives, served by your FastAPI app.

The page is built around a reader that notebook 10 writes (`reader_js`): a JavaScript function
`readStream(url, body, onText, signal)` that posts `body` to the app's SSE endpoint (the kit's
format: `data: {"delta": ...}` events, then `event: done`, whose data may carry the server's own
`server_ttft_ms`), calls `onText(delta)` for every piece of text as it arrives, and returns the
`done` event's data (null when the stream ended without one). This module adds the rest: a text
box, Ask and Stop (which aborts the request through `signal`), the answer growing as text, the
time to first token measured in the browser (`performance.now()` from the request to the first
text), and the timings sent back to the app when an answer ends (`POST <page>timings`), so the
notebook can read what the browser measured. Opened with `?ask=1` (as the notebook's frame is), the
page asks once by itself, so a browser that shows the frame measures without a click.

The page's own addresses are relative, so it works where the app is reached directly
(`http://127.0.0.1:<port>/`) and through Jupyter's own server (jupyter-server-proxy's
`<base_url>proxy/127.0.0.1:<port>/`, which reaches a JupyterLab in a container or on a hub too).
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import time
from dataclasses import dataclass, field

from pydantic import BaseModel

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 1.5rem auto; padding: 0 1rem; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; }
  #answer { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 6px; padding: .75rem;
            min-height: 6rem; margin: .75rem 0; }
  #stats { color: #555; font-size: 13px; }
  button { font: inherit; padding: .3rem 1rem; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<textarea id="prompt" rows="3">__PROMPT__</textarea>
<p>
  <label>max tokens
    <input id="max-tokens" type="number" min="1" value="__MAX_TOKENS__" style="width: 5rem"></label>
  <button id="ask">Ask</button> <button id="stop" disabled>Stop</button>
</p>
<div id="answer" aria-live="polite"></div>
<div id="stats">
  state: <span id="state" data-state="idle">idle</span> ·
  first token in this page: <span id="ttft" data-ms="">—</span> ·
  at the server: <span id="server-ttft" data-ms="">—</span> ·
  total: <span id="total" data-ms="">—</span> ·
  <span id="chunks" data-count="0">0</span> pieces
</div>
<script>
const STREAM_URL = __STREAM_URL__, REPORT_URL = __REPORT_URL__;
const $ = (id) => document.getElementById(id);
let controller = null;

function show(id, ms) {  // a duration on the page, and in data-ms for tests
  $(id).dataset.ms = ms.toFixed(1);
  $(id).textContent = ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function setState(state) {
  $("state").dataset.state = state;
  $("state").textContent = state;
  const busy = state === "waiting" || state === "streaming";
  $("ask").disabled = busy;
  $("stop").disabled = !busy;
}

__READER__

async function ask() {  // the page's part: the reader above does the streaming
  const answer = $("answer");
  answer.textContent = "";
  for (const id of ["ttft", "server-ttft", "total"]) { $(id).textContent = "—"; $(id).dataset.ms = ""; }
  const timing = {ttft_ms: null, total_ms: null, server_ttft_ms: null, characters: 0, chunks: 0,
                  state: "streaming"};
  $("chunks").textContent = "0";
  controller = new AbortController();
  setState("waiting");
  const started = performance.now();
  const onText = (delta) => {
    if (!delta) return;
    if (timing.ttft_ms === null) {
      timing.ttft_ms = performance.now() - started;
      show("ttft", timing.ttft_ms);
      setState("streaming");
    }
    answer.append(delta);  // a text node: the answer is never parsed as HTML
    timing.characters += delta.length;
    $("chunks").textContent = String(++timing.chunks);
    $("chunks").dataset.count = String(timing.chunks);
  };
  try {
    const body = {prompt: $("prompt").value, max_tokens: Number($("max-tokens").value)};
    const done = await readStream(STREAM_URL, body, onText, controller.signal);
    if (done && done.server_ttft_ms != null) {
      timing.server_ttft_ms = done.server_ttft_ms;
      show("server-ttft", done.server_ttft_ms);
    }
    timing.state = done ? "done" : "cut off";
  } catch (error) {
    timing.state = error.name === "AbortError" ? "stopped" : "error";
    if (timing.state === "error") answer.append(`\\n⚠ ${error.message}`);
  }
  timing.total_ms = performance.now() - started;
  show("total", timing.total_ms);
  setState(timing.state);
  fetch(REPORT_URL, {method: "POST", headers: {"Content-Type": "application/json"},
                     body: JSON.stringify(timing)}).catch(() => {});
}

$("ask").addEventListener("click", ask);
$("stop").addEventListener("click", () => controller && controller.abort());
if (new URLSearchParams(location.search).has("ask")) ask();  // the notebook's frame asks once
</script>
</body>
</html>
"""


class PageTiming(BaseModel):
    """What the page measured for one answer (milliseconds on the browser's clock)."""

    ttft_ms: float | None = None
    total_ms: float | None = None
    server_ttft_ms: float | None = None
    characters: int = 0
    chunks: int = 0
    state: str = ""


def stream_page_html(reader_js: str, stream_url: str = "/stream", report_url: str = "/timings",
                     title: str = "My LLM service", prompt: str = "Tell a short story about a robot.",
                     max_tokens: int = 60) -> str:
    """The page as one HTML string around `reader_js` (which defines `readStream`): posts to
    `stream_url`, reports its timings to `report_url`."""
    if "</script" in reader_js.lower():
        raise ValueError("reader_js must not contain </script>: it would end the page's script")
    return (PAGE_TEMPLATE
            .replace("__READER__", reader_js.strip())
            .replace("__TITLE__", html.escape(title))
            .replace("__PROMPT__", html.escape(prompt))
            .replace("__MAX_TOKENS__", str(int(max_tokens)))
            .replace("__STREAM_URL__", json.dumps(stream_url))
            .replace("__REPORT_URL__", json.dumps(report_url)))


@dataclass
class StreamPage:
    """The page's routes on an app, the times a browser opened it to ask by itself (`?ask=1`),
    and the timings browsers reported (newest last)."""

    path: str
    stream_url: str
    html: str
    reports: list[PageTiming] = field(default_factory=list)
    opened_to_ask: int = 0

    def url(self, server_url: str) -> str:
        """The page's address on a running server (`BackgroundServer.url`)."""
        return server_url.rstrip("/") + self.path

    def url_in_jupyter(self, port: int) -> str | None:
        """The page's address through the Jupyter server that runs this kernel (a path on
        JupyterLab's own origin, via jupyter-server-proxy), or None outside one."""
        base = jupyter_base_url()
        return None if base is None else f"{base}proxy/127.0.0.1:{port}{self.path}"

    def wait_for_report(self, opened_within_s: float | None = None, reported_within_s: float = 90.0,
                        poll_s: float = 0.1) -> PageTiming | None:
        """The first report of a page opened to ask by itself: wait up to `opened_within_s` for a
        browser to open it (default: 5 s in a kernel of a Jupyter server, where a frontend may show
        the frame; none elsewhere, e.g. a grading run), then up to `reported_within_s` for its
        answer to end. None when no browser opened it."""
        if opened_within_s is None:
            opened_within_s = 5.0 if jupyter_base_url() is not None else 0.0
        def wait(within_s: float, done) -> bool:
            deadline = time.monotonic() + within_s
            while not done() and time.monotonic() < deadline:
                time.sleep(poll_s)
            return bool(done())

        if wait(opened_within_s, lambda: self.opened_to_ask or self.reports):
            wait(reported_within_s, lambda: self.reports)
        return self.reports[0] if self.reports else None


def jupyter_base_url() -> str | None:
    """The base URL of the Jupyter server that started this kernel ('/' for a plain JupyterLab,
    '/user/<name>/' on a hub), where jupyter-server-proxy is installed; else None."""
    try:
        import jupyter_server_proxy  # noqa: F401  (the extension that serves <base>proxy/)
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    if os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        return os.environ["JUPYTERHUB_SERVICE_PREFIX"].rstrip("/") + "/"
    parent = os.getppid()  # a kernel is its Jupyter server's child
    for server in list_running_servers():
        if server.get("pid") == parent:
            return server.get("base_url", "/").rstrip("/") + "/"
    return None


def relative_to(page_path: str, url: str) -> str:
    """`url` (an absolute path on the app) as seen from the page at `page_path`: the page works
    wherever the app is mounted (directly, or under a proxy's prefix)."""
    if not url.startswith("/"):
        return url
    directory = page_path if page_path.endswith("/") else posixpath.dirname(page_path) + "/"
    return posixpath.relpath(url, directory)


def add_stream_page(app, reader_js: str, stream_url: str = "/stream", path: str = "/",
                    **page) -> StreamPage:
    """Serve the page at `path` of a FastAPI `app` (GET), reading the SSE endpoint at
    `stream_url` (POST, JSON `{"prompt", "max_tokens"}`) with `reader_js`'s `readStream`; the
    page's timings arrive at `<path>timings`. Keyword arguments go to `stream_page_html`
    (title, prompt, max_tokens)."""
    from fastapi.responses import HTMLResponse

    base = path if path.endswith("/") else path + "/"
    report_url = base + "timings"
    stream_page = StreamPage(path=path, stream_url=stream_url,
                             html=stream_page_html(reader_js, relative_to(path, stream_url),
                                                   relative_to(path, report_url), **page))

    async def serve_page(ask: str | None = None) -> HTMLResponse:  # `?ask=1`: the page asks by itself
        if ask is not None:
            stream_page.opened_to_ask += 1
        return HTMLResponse(stream_page.html, headers={"Cache-Control": "no-store"})

    async def receive_timing(timing: PageTiming) -> dict:
        stream_page.reports.append(timing)
        return {"received": len(stream_page.reports)}

    app.add_api_route(path, serve_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(report_url, receive_timing, methods=["POST"], include_in_schema=False)
    return stream_page
