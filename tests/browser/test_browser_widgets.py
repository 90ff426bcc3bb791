"""The chat panel in JupyterLab, for real: Debian's chromium driven by Playwright.

The panel as notebook 4 builds it (its setup cell, and the lines of its chat-panel cell that
make and show the panel) in a notebook of its own; the test types a prompt, clicks Send, watches
the answer grow with its time to first token, and clicks Stop mid-answer. The panel must say that it
stopped and that the server stopped generating, and the server's own /slots and /metrics must
agree. JupyterLab, the kernel and chromium are stopped afterwards, and checked to be gone.

Screenshots go to artifacts/browser-widgets/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
import time

import nbformat
import pytest

from helpers.server_activity import read_activity
from helpers.server_metrics import busy_slots
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings

from browser_support import (
    CHROMIUM,
    assert_nothing_left,
    chromium,
    descendants,
    jupyterlab,
    open_notebook,
    run_all,
)
from support import REPO, require

ARTIFACTS = REPO / "artifacts" / "browser-widgets"
PROMPT = "Write a long essay about the history of bread."
LESSON = REPO / "notebooks" / "04_streams_as_generators.ipynb"  # where the panel is taught


def panel_cells() -> list:
    """Notebook 4's setup cell, and its chat-panel cell up to `panel.show()` (the turn that cell
    then drives from code is left out: here a person clicks)."""
    lesson = nbformat.read(LESSON, as_version=4)
    setup = next(c for c in lesson.cells if "ChatNVIDIA(" in c.source)
    panel = next(c for c in lesson.cells if "chat-panel" in c.metadata.get("tags", []))
    lines = panel.source.splitlines()
    shown = lines[: next(i for i, line in enumerate(lines) if "panel.show()" in line) + 1]
    return [nbformat.v4.new_code_cell(setup.source), nbformat.v4.new_code_cell("\n".join(shown))]


SLOW_S = 300  # deadlines for a slow, shared 2-core machine (not timings)


def text_of(page, name: str) -> str:
    """The visible text of one part of the panel ('' while it is not on the page)."""
    found = page.locator(f".kit-chat-{name}")
    return found.first.inner_text() if found.count() else ""


def model_text(conversation: str) -> str:
    """What the model has written so far in the panel's conversation."""
    return conversation.split("Model:", 1)[1].strip() if "Model:" in conversation else ""


def poll(page, condition, what: str, timeout_s: float = SLOW_S, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / "timeout.png"))
            pytest.fail(f"{what} not seen within {timeout_s:.0f} s; panel: "
                        f"{text_of(page, 'panel')[-800:]!r}")
        time.sleep(interval_s)


@pytest.mark.timeout(1200)
def test_stop_in_the_chat_panel_stops_the_server(offline_server, tmp_path):
    started = time.monotonic()
    require(CHROMIUM.is_file(), f"{CHROMIUM} is missing: run `make browser-deps` "
                                "(sudo apt-get install chromium)")
    settings = ConnectionSettings(base_url=offline_server.base_url, model=OFFLINE_MODEL_ID)
    before = set(descendants())
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    root = tmp_path / "lab"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    notebook.cells = panel_cells()
    nbformat.write(notebook, root / "chat.ipynb")

    with jupyterlab(root, tmp_path / "jupyter", offline_server.base_url) as (base, token), \
            chromium(tmp_path / "chromium-profile") as page:
        open_notebook(page, base, token, "chat.ipynb", workspace="chat")
        run_all(page, ARTIFACTS / "not-run.png")
        poll(page, lambda: page.locator(".kit-chat-send").count(), "the chat panel")
        assert page.locator(".kit-chat-stop").is_disabled(), "Stop is off until something streams"

        page.locator(".kit-chat-prompt textarea").click()
        page.keyboard.type(PROMPT)
        page.locator(".kit-chat-send").click()

        # The answer grows in the panel, with the live stats; the server is generating it.
        growing: list[str] = []
        def grown_enough():
            answer = model_text(text_of(page, "conversation"))
            if answer and answer != "…" and (not growing or answer != growing[-1]):
                growing.append(answer)
            return len(growing) >= 3 and len(growing[-1]) >= 40
        poll(page, grown_enough, "the answer growing in the panel")
        live_stats = text_of(page, "stats")
        in_flight = busy_slots(settings)
        page.screenshot(path=str(ARTIFACTS / "01-streaming.png"))
        page.locator(".kit-chat-stop").click()  # a real click, mid-answer
        clicked = time.monotonic()

        server_line = poll(page, lambda: text_of(page, "server"), "the server's verdict after Stop")
        stop_to_verdict_s = time.monotonic() - clicked
        page.screenshot(path=str(ARTIFACTS / "02-stopped.png"))
        status = text_of(page, "status")
        conversation = text_of(page, "conversation")
        counted = read_activity(settings)
        time.sleep(1.5)
        counted_later = read_activity(settings)
        conversation_later = text_of(page, "conversation")
        summary = page.locator(".jp-OutputArea-output[data-mime-type='text/markdown']").all_inner_texts()
    lab_closed = time.monotonic()

    # Live while it streamed: growing text, time to first token and tokens/s.
    assert all(len(b) > len(a) for a, b in zip(growing, growing[1:], strict=False)), growing
    assert re.search(r"first token \d+\.\d\d s · total \d+\.\d\d s · \d+ chunks · \d+ tok/s", live_stats), (
        live_stats)
    assert in_flight >= 1, "the server was not generating while the panel streamed"
    # After the click: the panel stopped, and says the server stopped generating.
    assert status == "Stopped by you.", f"{status!r}: the answer may have ended before Stop"
    assert "(stopped)" in conversation and conversation_later == conversation
    assert server_line.startswith("server stopped generating: "), server_line
    found = re.search(r"stood still from [\d.]+ s after Stop \((\d+) more tokens in [\d.]+ s\), "
                      r"no request running", server_line)
    assert found and found.group(1) == "0", server_line
    # ... and the server agrees: no busy slot, its token counter no longer moves.
    assert counted.requests_running == 0 and counted_later.requests_running == 0
    assert counted_later.tokens_generated == counted.tokens_generated
    assert any("stopped" in text for text in summary), f"the saved summary shows no stop: {summary}"

    assert_nothing_left(before, tmp_path)
    timing = (f"chat panel browser test: {time.monotonic() - started:.1f} s (JupyterLab session "
              f"{lab_closed - started:.1f} s); Stop click → server verdict shown {stop_to_verdict_s:.1f} s\n"
              f"live stats at Stop: {live_stats}\n{server_line}\n")
    (ARTIFACTS / "run-time.txt").write_text(timing)
    print("\n" + timing)
