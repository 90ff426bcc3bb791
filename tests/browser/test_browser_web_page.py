"""Notebook 10's web page, for real: the notebook's own cells build and serve the app in a live
kernel, and Debian's chromium (driven by Playwright) opens the page, presses Ask and watches the
answer grow; the time to first token the page shows is checked against the server's own figure
and against what the page reported back to the notebook. Stop, pressed mid-answer, stops the
model's work. Through a real JupyterLab's own address (jupyter-server-proxy, the way the notebook's
frame loads it), the page opened with `?ask=1` asks by itself, its answer grows piece by piece
(the proxy streams, it does not buffer), and its report reaches the notebook."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from browser_support import jupyterlab
from support import REPO, require

CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = REPO / "solutions" / "10_streams_to_the_browser.ipynb"
# what the page needs, in order
LESSON_TAGS = ("setup", "app", "blocking", "in_thread", "bridged", "hang-up", "page")
ANSWER_TOKENS = 60
POLL_S = 0.05
DEADLINE_S = 180  # a deadline on a shared machine, not a timing
SHOTS = REPO / "artifacts" / "browser-web-page"  # git-ignored

PAGE_STATE_JS = """() => ({
  state: document.getElementById('state').dataset.state,
  length: document.getElementById('answer').textContent.length,
  ttft: document.getElementById('ttft').dataset.ms,
  server: document.getElementById('server-ttft').dataset.ms,
  total: document.getElementById('total').dataset.ms,
  chunks: Number(document.getElementById('chunks').dataset.count),
})"""


# ── the notebook's page in chromium ────────────────────────────────────────────────────────

@contextlib.contextmanager
def lesson_kernel(cells):
    """A live kernel that has run the notebook's cells up to its page; stopped after."""
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(notebook, timeout=300, iopub_timeout=60, kernel_name="python3",  # a busy machine
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)

        def run(source: str) -> str:
            """Run `source` in the kernel; what it writes to `out` (a file: on a busy machine a
            kernel's printed output can miss nbclient's IOPub wait, a file cannot)."""
            out = Path(tempfile.mkdtemp()) / "out.txt"
            cell = nbformat.v4.new_code_cell(f"out = open({str(out)!r}, 'w')\n{source}\nout.close()")
            notebook.cells.append(cell)
            client.execute_cell(cell, len(notebook.cells) - 1)
            failed = [o for o in cell.outputs if o.output_type == "error"]
            assert not failed, f"{failed[0].ename}: {failed[0].evalue}"
            return out.read_text()

        try:
            yield notebook, run
        finally:
            run("server.stop()")


def lesson_cells() -> list:
    """The notebook's cells the page needs (tags, or the exercise's grade_id), in order."""
    source = nbformat.read(NOTEBOOK, as_version=4)

    def named(cell, name):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        return name in cell.metadata.get("tags", []) or grade_id == name

    return [next(c for c in source.cells if named(c, name)) for name in LESSON_TAGS]


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def watch_answer(page, started: float) -> list[dict]:
    """Poll the page until the answer is over; every state seen, with seconds since `started`."""
    states = []
    while True:
        state = page.evaluate(PAGE_STATE_JS)
        state["at_s"] = time.perf_counter() - started
        states.append(state)
        if state["state"] not in ("waiting", "streaming", "idle"):
            return states
        assert state["at_s"] < DEADLINE_S, f"the answer did not end: {state}"
        time.sleep(POLL_S)


@pytest.mark.timeout(900)
def test_the_page_grows_the_answer_and_shows_a_plausible_first_token_time(offline_server):
    from playwright.sync_api import sync_playwright

    require(CHROMIUM.is_file(),
            f"{CHROMIUM} is missing: run `make browser-deps` (sudo apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with lesson_kernel(lesson_cells()) as (notebook, run), sync_playwright() as playwright:
        url = re.search(r"Open the page: (http://127\.0\.0\.1:\d+/)", text_of(notebook.cells[-1])).group(1)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.fill("#prompt", "Write a story about a lighthouse keeper and a storm.")
            page.fill("#max-tokens", str(ANSWER_TOKENS))
            started = time.perf_counter()
            page.click("#ask")
            states = watch_answer(page, started)
            page.screenshot(path=str(SHOTS / "08-page.png"))

            # Stop mid-answer: the page aborts its request, the server stops generating.
            page.fill("#prompt", "Write a very long essay about the history of bread.")
            page.fill("#max-tokens", "250")
            page.click("#ask")
            page.wait_for_function("document.getElementById('answer').textContent.length > 20",
                                   timeout=DEADLINE_S * 1000)
            page.click("#stop")
            page.wait_for_function("document.getElementById('state').dataset.state === 'stopped'")
        finally:
            browser.close()
        stopped = json.loads(run(
            "import json, time\n"
            "from helpers.server_metrics import requests_in_flight\n"
            "deadline = time.monotonic() + 20\n"
            "stopped = 'Write a very long essay about the history of bread.'\n"
            "while (stopped not in closed or requests_in_flight(settings)) and time.monotonic() < deadline:\n"
            "    time.sleep(0.2)\n"
            "out.write(json.dumps({'closed': closed, 'in_flight': requests_in_flight(settings),\n"
            "                      'reports': [r.model_dump() for r in page.reports]}))"))

    streaming = [s for s in states if s["state"] == "streaming"]
    lengths = [s["length"] for s in streaming]
    growing = sorted(set(lengths))
    final = states[-1]
    print(f"\n  page: {len(growing)} growing states while streaming, {final['chunks']} pieces, "
          f"TTFT {float(final['ttft']):.0f} ms in the page, {float(final['server']):.0f} ms at the server, "
          f"total {float(final['total']):.0f} ms")
    assert final["state"] == "done", final
    assert len(growing) >= 3, f"the text must grow over time, seen while streaming: {lengths}"
    assert lengths == sorted(lengths), "the answer only ever grows"
    assert growing[0] < final["length"] / 2 < final["length"], (growing, final)
    assert final["chunks"] >= 10 and final["length"] > growing[0]

    ttft, server_ttft, total = float(final["ttft"]), float(final["server"]), float(final["total"])
    assert 0 < ttft < total, final
    assert 0 < server_ttft <= ttft, "the server's clock starts after the page's and stops before it"
    assert ttft - server_ttft < 1000, "the trip from the page to the server and back is short on loopback"
    first_seen = next(s["at_s"] for s in states if s["length"] > 0)
    assert ttft / 1000 <= first_seen + POLL_S, "the page cannot show text before its own first token"

    report = stopped["reports"][0]
    assert report["state"] == "done" and report["chunks"] == final["chunks"]
    assert abs(report["ttft_ms"] - ttft) < 0.1 and report["server_ttft_ms"] == server_ttft
    assert [r["state"] for r in stopped["reports"]] == ["done", "stopped"]
    assert "Write a very long essay about the history of bread." in stopped["closed"], stopped
    assert stopped["in_flight"] == 0, "after Stop the model server is idle"


@pytest.mark.timeout(900)
def test_through_jupyterlabs_address_the_frame_asks_by_itself_and_streams(offline_server, tmp_path):
    from playwright.sync_api import sync_playwright

    require(CHROMIUM.is_file(),
            f"{CHROMIUM} is missing: run `make browser-deps` (sudo apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (tmp_path / "lab").mkdir()
    with lesson_kernel(lesson_cells()) as (notebook, run), \
            jupyterlab(tmp_path / "lab", tmp_path / "jupyter", offline_server.base_url) as (base, token), \
            sync_playwright() as playwright:
        shown = text_of(notebook.cells[-1])
        port = int(re.search(r"Open the page: http://127\.0\.0\.1:(\d+)/", shown).group(1))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(f"{base}/login?next=/api/status")  # sign in once with the lab's token: a cookie
            page.fill("input[name=password]", token)
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_url(re.compile(r"/api/status"))
            started = time.perf_counter()
            page.goto(f"{base}/proxy/127.0.0.1:{port}/?ask=1")  # the frame's address in the lab
            states = watch_answer(page, started)
            page.wait_for_load_state("networkidle")  # the page's report has reached the app
            page.screenshot(path=str(SHOTS / "09-page-through-jupyterlab.png"))
        finally:
            browser.close()
        reported = json.loads(run(
            "import json\n"
            "report = page.wait_for_report(opened_within_s=0, reported_within_s=30)\n"
            "out.write(json.dumps({'opened': page.opened_to_ask,\n"
            "                      'report': report and report.model_dump()}))"))

    streaming = sorted({s["length"] for s in states if s["state"] == "streaming"})
    final = states[-1]
    print(f"\n  through JupyterLab: {len(streaming)} growing states while streaming, "
          f"{final['chunks']} pieces, "
          f"TTFT {float(final['ttft']):.0f} ms in the page")
    assert final["state"] == "done" and final["length"] > 0, final
    assert len(streaming) >= 3, f"the proxy must pass the stream on as it comes, not at its end: {streaming}"
    assert reported["opened"] == 1, "the page counted one opening to ask by itself"
    assert reported["report"], "the page's report never reached the app"
    assert reported["report"]["state"] == "done" and reported["report"]["chunks"] == final["chunks"], reported
