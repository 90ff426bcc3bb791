"""A learner at the classroom's hub, for real: Debian's chromium driven by Playwright.

`llm-kit classroom` runs on the session's offline server (the class's configured model) and the
instructor releases notebook 2 with `llm-kit classroom release`. Then, in the browser, a learner
signs in on the hub's login page with the workshop code, their lab opens on their home, they open
nbgrader's Assignments tab, fetch notebook 2, open it, run its first cells against the shared
model (the streamed answer grows in place), and submit it from the Assignments tab. Each step is
checked from what the page shows, and so is what the learner does not get: formgrader, Create
Assignment and the course list. The learner's OS account, home and every process are gone after.

Screenshots go to artifacts/browser-classroom/ (git-ignored), with the measured run time.
"""

from __future__ import annotations

import json
import pwd
import re
import shutil
import time

import nbformat
import pytest

from llm_kit.grading.course import COURSE_ID

from browser_support import CHROMIUM, assert_nothing_left, chromium, descendants
from support import REPO, require
from support.classroom import classroom, learners_can_enter_python, require_root

FAQ = "02_streaming_and_batching"
SHOTS = REPO / "artifacts" / "browser-classroom"
NOTEBOOK_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELLS = f"{NOTEBOOK_PANEL} .jp-Notebook .jp-Cell"
WAIT_MS = 180_000  # a bound on each step on 2 busy cores (the step ends as soon as the page shows it)
# Record every distinct text of one cell's output while it runs (a stream grows in place).
WATCH_OUTPUT_JS = """({cells, index}) => {
  const cell = document.querySelectorAll(cells)[index];
  cell.scrollIntoView({block: 'center'});
  window.kitSeen = [];
  const record = () => {
    const text = (cell.querySelector('.jp-OutputArea') || {}).textContent || '';
    if (text && window.kitSeen[window.kitSeen.length - 1] !== text) window.kitSeen.push(text);
  };
  new MutationObserver(record).observe(cell, {subtree: true, childList: true, characterData: true});
}"""
PROMPT_DONE_JS = """({cells, index}) => /^\\[\\d+\\]:$/.test((document.querySelectorAll(cells)[index]
  ?.querySelector('.jp-InputPrompt')?.textContent || '').trim())"""


def code_cell(notebook: nbformat.NotebookNode, pattern: str, what: str) -> int:
    """The index of the first code cell whose source matches `pattern`."""
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and re.search(pattern, cell.source):
            return i
    pytest.fail(f"the fetched {FAQ} has no {what} cell (pattern {pattern!r})")


def sign_in(page, base: str, name: str, code: str) -> None:
    """The hub's login form, as a learner fills it in (SharedPasswordAuthenticator)."""
    page.goto(f"{base}/hub/login", timeout=WAIT_MS)
    page.fill("#username_input", name)
    page.fill("#password_input", code)
    page.screenshot(path=str(SHOTS / "01-login.png"))  # the code shows as dots
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{re.escape(name)}/lab"), timeout=WAIT_MS)
    page.wait_for_selector(".jp-DirListing-content", timeout=WAIT_MS)


def answer_part(text: str, title: str) -> str:
    """A stream_print display's answer: without its title, the waiting line and the stats line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(line for line in lines if line.strip() != title.strip()
                     and not line.startswith("waiting for the first token")
                     and "first token" not in line).strip()


def run_cell(page, index: int) -> None:
    """Select the cell (click its prompt) and run it in place (Ctrl+Enter), as a learner does."""
    cell = page.locator(CELLS).nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Control+Enter")


def finished(page, index: int) -> dict:
    """Wait (bounded) until the cell shows an execution count; its prompt and output text."""
    page.wait_for_function(PROMPT_DONE_JS, arg={"cells": CELLS, "index": index}, timeout=WAIT_MS)
    cell = page.locator(CELLS).nth(index)
    output = cell.locator(".jp-OutputArea")
    return {"prompt": cell.locator(".jp-InputPrompt").first.text_content().strip(),
            "text": output.first.text_content() if output.count() else ""}


@pytest.mark.timeout(900)
def test_a_learner_signs_in_fetches_runs_and_submits_notebook_2_in_the_browser(offline_server, tmp_path):
    started = time.monotonic()
    require(CHROMIUM.is_file(), f"{CHROMIUM} is missing: run `make browser-deps` "
                                "(sudo apt-get install chromium)")
    require_root()
    require((REPO / "solutions" / f"{FAQ}.ipynb").is_file(), f"solutions/{FAQ}.ipynb does not exist yet")
    before = set(descendants())
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    steps: list[str] = []

    def clock(step: str) -> None:
        steps.append(f"{step}: {time.monotonic() - started:.1f} s")

    with learners_can_enter_python(), classroom(offline_server.base_url) as room:
        clock("classroom up")
        room.kit("classroom", "release", FAQ)  # the instructor's part: the command, not the browser
        clock("released")
        who = room.name("ada")
        home = room.folder / "homes" / f"kit-{who}"
        inbound = room.folder / "room" / "exchange" / COURSE_ID / "inbound"
        with chromium(tmp_path / "chromium-profile") as page:
            sign_in(page, room.base, who, room.code)
            clock("signed in, lab open")
            # the lab's file browser is rooted at the learner's own home
            config = json.loads(page.locator("#jupyter-config-data").text_content())
            assert config["serverRoot"] == str(home), config["serverRoot"]
            assert pwd.getpwnam(f"kit-{who}").pw_dir == str(home)
            page.screenshot(path=str(SHOTS / "02-lab-on-home.png"))

            # nbgrader's menu: the Assignments tab only, none of the instructor's tools
            page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
            menu = page.locator(".lm-Menu:visible").last
            menu.locator(".lm-Menu-item:visible").first.wait_for(timeout=WAIT_MS)
            offered = [t.strip() for t in menu.locator(".lm-Menu-item:visible .lm-Menu-itemLabel")
                       .all_text_contents()]
            page.screenshot(path=str(SHOTS / "03-nbgrader-menu.png"))
            assert offered == ["Assignment List"], offered
            menu.locator(".lm-Menu-item", has_text="Assignment List").click()
            tab = page.locator("#nbgrader-assignment-list")
            released = tab.locator("#released_assignments_list .list_item", has_text=FAQ)
            released.wait_for(timeout=WAIT_MS)
            page.screenshot(path=str(SHOTS / "04-assignments-released.png"))

            released.locator("button", has_text="Fetch").click()
            fetched = tab.locator("#fetched_assignments_list > .list_item", has_text=FAQ)
            fetched.wait_for(timeout=WAIT_MS)
            page.wait_for_function(  # the file browser (refreshed by the lab) shows it in the home
                """(name) => [...document.querySelectorAll('.jp-DirListing-itemText')]
                   .some(item => item.textContent.trim() === name)""", arg=FAQ, timeout=WAIT_MS)
            assert (home / FAQ / f"{FAQ}.ipynb").is_file()
            assert released.count() == 0, "the fetched assignment is still listed as released"
            clock("fetched")
            page.screenshot(path=str(SHOTS / "05-assignments-fetched.png"))

            fetched.locator(".assignment-notebooks-link").click()  # unfold its notebooks
            fetched.locator(".collapse a", has_text=FAQ).click()
            page.wait_for_selector(f"{NOTEBOOK_PANEL} .jp-Cell", timeout=WAIT_MS)
            page.wait_for_selector(f"{NOTEBOOK_PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=WAIT_MS)
            notebook = nbformat.read(home / FAQ / f"{FAQ}.ipynb", as_version=4)
            page.wait_for_function(f"() => document.querySelectorAll('{CELLS}').length === "
                                   f"{len(notebook.cells)}", timeout=WAIT_MS)
            clock("notebook open")

            # its first cells, against the shared model: setup, a chunk loop, a live stream
            setup = code_cell(notebook, r"ChatNVIDIA\(", "setup")
            chunks = code_cell(notebook, r"for chunk in llm\.stream\(", "chunk loop")
            streamed = code_cell(notebook, r"stream_print\(\s*llm\.stream\(", "stream_print")
            for index in (setup, chunks):
                run_cell(page, index)
            page.evaluate(WATCH_OUTPUT_JS, {"cells": CELLS, "index": streamed})
            run_cell(page, streamed)
            shown = {index: finished(page, index) for index in (setup, chunks, streamed)}
            seen = page.evaluate("() => window.kitSeen")
            clock("first cells ran")
            page.locator(CELLS).nth(streamed).screenshot(path=str(SHOTS / "06-streamed-cell.png"))
            page.screenshot(path=str(SHOTS / "07-first-cells-ran.png"))

            page.keyboard.press("Control+s")  # save, as a learner does before submitting
            page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)",
                                   timeout=WAIT_MS)
            page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Assignments").click()
            fetched.locator("button", has_text="Submit").click()
            submitted = tab.locator("#submitted_assignments_list > .list_item", has_text=FAQ)
            submitted.wait_for(timeout=WAIT_MS)
            clock("submitted")
            page.screenshot(path=str(SHOTS / "08-submitted.png"))
            submitted_button = submitted.locator("button").first.text_content().strip()

            # nor can the learner reach formgrader on their server
            formgrader = page.request.get(f"{room.base}/user/{who}/formgrader", max_redirects=0)
            create_tools = page.locator("[title='Create Assignment'], #nbgrader-create_assignemnt, "
                                        "#formgrader").count()
        in_exchange = sorted(p.name for p in inbound.iterdir()) if inbound.is_dir() else []
        handed_in = [nbformat.read(path, as_version=4)
                     for path in inbound.glob(f"kit-{who}+{FAQ}+*/{FAQ}.ipynb")]
    clock("classroom stopped")

    # the cells ran against the shared model, without an error, and the answer streamed in place
    for index, state in shown.items():
        assert re.fullmatch(r"\[\d+\]:", state["prompt"]), (index, state)
        assert not re.search(r"Traceback|Error\b", state["text"]), (index, state["text"][-1500:])
    assert "answer cap:" in shown[setup]["text"], shown[setup]["text"]
    assert shown[chunks]["text"].count("|") >= 3, shown[chunks]["text"]  # many chunks, each marked
    (SHOTS / "streamed-states.json").write_text(json.dumps(seen, indent=1))
    title = re.search(r'long_prompt\s*=\s*"([^"]+)"', notebook.cells[streamed].source)
    answers = [answer_part(text, title.group(1) if title else "") for text in seen]
    partial = [a for i, a in enumerate(answers) if a and a not in answers[:i]]
    assert len(partial) >= 3, f"the streamed answer did not grow in place: {seen}"
    assert all(len(a) <= len(b) for a, b in zip(partial, partial[1:], strict=False)), partial
    assert re.search(r"first token \d+\.\d+ s", shown[streamed]["text"]), shown[streamed]["text"][-300:]

    # the submission reached the exchange under the learner's OS account
    assert submitted_button == "Fetch Feedback", submitted_button
    assert any(name.startswith(f"kit-{who}+{FAQ}+") for name in in_exchange), in_exchange
    assert len(handed_in) == 1 and handed_in[0].cells[setup].execution_count, "the saved, run notebook"
    # the instructor's tools are not there for the learner
    assert formgrader.status == 404, formgrader.status
    assert create_tools == 0

    # nothing left: the learner's account and home, the hub, their server and kernels, chromium
    with pytest.raises(KeyError):
        pwd.getpwnam(f"kit-{who}")
    assert not room.folder.exists()
    assert_nothing_left(before, room.folder)

    seconds = time.monotonic() - started
    (SHOTS / "run-time.txt").write_text(f"classroom browser test: {seconds:.1f} s\n" + "".join(
        f"{step}\n" for step in steps))
    print(f"classroom browser test run time: {seconds:.1f} s ({'; '.join(steps)})")
