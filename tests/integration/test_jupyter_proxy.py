"""What notebook 10 says of its page's two addresses, checked on a real JupyterLab with the kit's
jupyter-server-proxy: through JupyterLab's own address an SSE response streams as it is written
(the reader sends `Accept: text/event-stream`), and a client that hangs up there does not reach
the app (the proxy reads the stream on), while on the direct address the app's generator is
cancelled at once. If a later jupyter-server-proxy passes hang-ups on, this test fails and the
notebook's sentence must change with it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from helpers.background_server import BackgroundServer

from browser_support import jupyterlab

PIECES, PAUSE_S = 100, 0.1  # a 10 s stream
HANG_UP_AFTER = 3
DEADLINE_S = 3.0  # how long a cancellation may take to arrive (a deadline, not a timing)


def slow_sse_app(cancelled: list) -> FastAPI:
    app = FastAPI()

    @app.post("/stream")
    async def stream():
        async def events():
            try:
                for i in range(PIECES):
                    yield f"data: {i}\n\n"
                    await asyncio.sleep(PAUSE_S)
            except asyncio.CancelledError:
                cancelled.append(time.monotonic())
                raise

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def read_then_hang_up(url: str, headers: dict) -> tuple[list[float], float]:
    """Arrival times of the first pieces, then hang up; (arrivals, when the client left)."""
    with httpx.stream("POST", url, headers=headers | {"Accept": "text/event-stream"}, timeout=30) as reply:
        assert reply.status_code == 200, reply.status_code
        started, arrivals = time.monotonic(), []
        for line in reply.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - started)
            if len(arrivals) == HANG_UP_AFTER:
                break
    return arrivals, time.monotonic()


@pytest.mark.timeout(300)
def test_jupyterlabs_proxy_streams_sse_but_does_not_pass_a_hang_up_on(tmp_path):
    cancelled: list[float] = []
    (tmp_path / "lab").mkdir()
    with BackgroundServer(slow_sse_app(cancelled)) as app, \
            jupyterlab(tmp_path / "lab", tmp_path / "jupyter", "http://127.0.0.1:9/v1") as (base, token):
        auth = {"Authorization": f"token {token}"}

        arrivals, left = read_then_hang_up(f"{app.url}/stream", auth)
        deadline = left + DEADLINE_S
        while not cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cancelled, "on the direct address the hang-up cancels the app's generator"

        cancelled.clear()
        arrivals, left = read_then_hang_up(f"{base}/proxy/127.0.0.1:{app.port}/stream", auth)
        assert arrivals[-1] - arrivals[0] >= (HANG_UP_AFTER - 1) * PAUSE_S * 0.5, (
            f"through JupyterLab the pieces arrive as they are written, not at the end: {arrivals}")
        time.sleep(DEADLINE_S)
        assert not cancelled, (
            "jupyter-server-proxy now passes a hang-up on: notebook 10's sentence on Stop through "
            "JupyterLab's address must change")
