"""A learner in JupyterLab, for real: Debian's chromium driven by Playwright.

Opens the streaming notebook's student copy, runs all cells from the Run menu, and checks
what a person sees: the streamed answer grows in place (a Markdown display, not stdout),
the stats line shows the time to first token, the batch comparison chart is an image, and
no cell fails before the exercise. Then the student's self-check: nbgrader's Validate
button on a finished FAQ exercise, and `llm-kit grade validate` on an unfinished one.
Everything it starts (JupyterLab, kernels, chromium) is stopped, and checked to be gone.

Screenshots go to artifacts/browser/ (git-ignored), with the measured run time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from helpers.settings import OFFLINE_MODEL_ID

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

NOTEBOOK = "02_streaming_and_batching.ipynb"
ARTIFACTS = REPO / "artifacts" / "browser"
LLM_KIT = Path(sys.executable).with_name("llm-kit")
RUN_TIMEOUT_S = 1200  # the whole notebook on 2 shared cores (deadlines, not timings)

# What the notebook shows, read from the live page (the notebook panel that is in front).
CELL_STATE_JS = """(index) => {
  const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
  const cell = cells[index];
  if (!cell) return null;
  cell.scrollIntoView({block: 'center'});  // innerText needs the cell rendered, as a person's eyes do
  const out = cell.querySelector('.jp-OutputArea');
  const outputs = out ? [...out.querySelectorAll('.jp-OutputArea-output')] : [];
  return {
    prompt: (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim(),
    text: out ? out.innerText : '',
    mimes: outputs.map(o => o.getAttribute('data-mime-type')),
    texts: outputs.map(o => o.textContent),
    images: out ? [...out.querySelectorAll('img')].map(i => i.naturalWidth) : [],
  };
}"""
CELL_COUNT_JS = """() => document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length"""
PROMPTS_JS = """() => [...document.querySelectorAll(
  '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')].map(
  c => (c.querySelector('.jp-InputPrompt')?.textContent || '').trim())"""
ERROR_TEXT = re.compile(r"Traceback|Error\b|Exception\b|⚠")
DONE_PROMPT = re.compile(r"^\[\d+\]:$")


# ── processes ──────────────────────────────────────────────────────────────────────────


# ── JupyterLab ─────────────────────────────────────────────────────────────────────────


def _trimmed_exercise(student: nbformat.NotebookNode, answer: str | None) -> nbformat.NotebookNode:
    """Setup + the FAQ exercise only (a student who skipped the demos), answered or not."""
    notebook = nbformat.from_dict(json.loads(json.dumps(student)))
    cells = notebook.cells
    setup = next(i for i, c in enumerate(cells) if "ChatNVIDIA(" in c.source)
    exercise = next(i for i, c in enumerate(cells) if "## Exercise" in c.source)
    notebook.cells = cells[: setup + 1] + cells[exercise:]
    if answer is not None:
        cell = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution"))
        cell.source = answer
    return notebook


def _solution_answer() -> str:
    """The FAQ answer cell of the instructor notebook, without the solution markers."""
    solution = nbformat.read(REPO / "solutions" / NOTEBOOK, as_version=4)
    cell = next(c for c in solution.cells if c.metadata.get("nbgrader", {}).get("solution"))
    return "\n".join(line for line in cell.source.splitlines() if "### " not in line).strip()


# ── the notebook ───────────────────────────────────────────────────────────────────────


def cell_index(notebook: nbformat.NotebookNode, pattern: str, what: str) -> int:
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and re.search(pattern, cell.source) and "import" not in cell.source:
            return i
    pytest.fail(f"{NOTEBOOK} has no {what} cell (pattern {pattern!r})")


def answer_text(state: dict, title: str) -> str:
    """The streamed answer in the cell: its text without the title and the stats line."""
    lines = [line for line in state["text"].strip().splitlines() if line.strip()]
    if lines and lines[0].strip() == title.strip():
        lines = lines[1:]
    if lines and ("first token" in lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines).strip()


def watch_stream(page, index: int, title: str, shots: Path) -> tuple[list[str], dict]:
    """Poll the streamed cell until it has run; the distinct partial answers seen meanwhile."""
    partials: list[str] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        state = page.evaluate(CELL_STATE_JS, index)
        assert state is not None, "the streamed cell is not on the page"
        if state["mimes"]:  # live display: one Markdown output, redrawn in place
            assert state["mimes"] == ["text/markdown"], state["mimes"]
        if DONE_PROMPT.match(state["prompt"]):
            return partials, state
        answer = answer_text(state, title)
        if answer and (not partials or answer != partials[-1]):
            partials.append(answer)
            if len(partials) == 2:
                page.screenshot(path=str(shots / "02-streaming.png"))
        assert time.monotonic() < deadline, f"the streamed cell did not finish: {state}"
        time.sleep(0.1)


def wait_for_run_to_stop(page, cell_count: int) -> list[dict]:
    """Wait until Run All has stopped (kernel idle, no cell queued); every cell's state.

    Run All stops at the first error: the exercise's NotImplementedError, if all went well.
    """
    deadline = time.monotonic() + RUN_TIMEOUT_S
    quiet = 0
    while quiet < 2:  # idle twice in a row, a second apart: nothing is queued any more
        status = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) "
                              ".jp-Notebook-ExecutionIndicator").get_attribute("data-status")
        prompts = page.evaluate(PROMPTS_JS)
        quiet = quiet + 1 if status == "idle" and "[*]:" not in prompts else 0
        if time.monotonic() > deadline:
            pytest.fail(f"Run All still running after {RUN_TIMEOUT_S} s: {prompts}")
        time.sleep(1)
    return [page.evaluate(CELL_STATE_JS, i) for i in range(cell_count)]


def validate_in_browser(page, shots: Path) -> str:
    """Click nbgrader's Validate toolbar button; return the text of its result dialog."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar").get_by_text(
        "Validate", exact=True).click()
    dialog = page.locator(".jp-Dialog-content")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not re.search(r"Success|FAILED|fail|error", dialog.inner_text() if dialog.count() else "",
                        re.IGNORECASE):
        assert time.monotonic() < deadline, "the Validate dialog never showed a result"
        time.sleep(0.5)
    text = dialog.inner_text()
    page.screenshot(path=str(shots / "06-validate-finished.png"))
    return text


# ── the test ───────────────────────────────────────────────────────────────────────────


@pytest.mark.timeout(3000)
def test_a_learner_runs_the_streaming_notebook_in_jupyterlab(offline_server, tmp_path):
    started = time.monotonic()
    require(CHROMIUM.is_file(), f"{CHROMIUM} is missing: run `make browser-deps` "
                                "(sudo apt-get install chromium)")
    require((REPO / "notebooks" / NOTEBOOK).is_file(), f"notebooks/{NOTEBOOK} does not exist yet")
    require(LLM_KIT.is_file(), f"the llm-kit command is not installed next to {sys.executable}")
    before = set(descendants())
    shots = ARTIFACTS
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)

    root = tmp_path / "lab"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    student = nbformat.read(root / NOTEBOOK, as_version=4)
    nbformat.write(_trimmed_exercise(student, _solution_answer()), root / "faq_finished.ipynb")
    nbformat.write(_trimmed_exercise(student, None), root / "faq_unfinished.ipynb")
    streamed = cell_index(student, r"stream_print\(\s*llm\.stream\(", "stream_print(llm.stream(...))")
    compared = cell_index(student, r"\bcompare\(", "compare(...)")
    exercise = next(i for i, c in enumerate(student.cells)
                    if c.metadata.get("nbgrader", {}).get("solution")
                    and "raise NotImplementedError" in c.source)
    title = re.search(r"title=(\w+)", student.cells[streamed].source)
    title_text = ""
    if title:  # the title is a variable defined in the same cell: `long_prompt = "..."`
        found = re.search(rf"{title.group(1)}\s*=\s*\"([^\"]+)\"", student.cells[streamed].source)
        title_text = found.group(1) if found else ""

    # The student's command-line self-check on the unfinished exercise, run meanwhile.
    validate_env = dict(os.environ, NIM_BASE_URL=offline_server.base_url,
                        NIM_MODEL=OFFLINE_MODEL_ID)
    unfinished = subprocess.Popen([str(LLM_KIT), "grade", "validate", str(root / "faq_unfinished.ipynb")],
                                  cwd=REPO, env=validate_env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with jupyterlab(root, tmp_path / "jupyter", offline_server.base_url) as (base, token), \
                chromium(tmp_path / "chromium-profile") as page:
            open_notebook(page, base, token, NOTEBOOK, workspace="lesson")
            page.wait_for_function(f"({CELL_COUNT_JS})() === {len(student.cells)}", timeout=60_000)
            page.screenshot(path=str(shots / "01-opened.png"))

            run_all(page, shots / "02-run-all-not-started.png")

            partials, final = watch_stream(page, streamed, title_text, shots)
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(
                streamed).screenshot(path=str(shots / "03-streamed-cell.png"))
            cells = wait_for_run_to_stop(page, len(student.cells))
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(
                compared).screenshot(path=str(shots / "04-compare-cell.png"))
            page.screenshot(path=str(shots / "05-run-stopped-at-exercise.png"))

            open_notebook(page, base, token, "faq_finished.ipynb", workspace="self-check")
            validation = validate_in_browser(page, shots)
        lab_stopped = time.monotonic()
        unfinished_out, _ = unfinished.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if unfinished.poll() is None:
            unfinished.kill()
            unfinished.wait()

    # Every cell before the exercise ran, without an error; the exercise stops the run.
    before_exercise = [(i, cell, state) for i, (cell, state)
                       in enumerate(zip(student.cells, cells, strict=True))
                       if cell.cell_type == "code" and i < exercise]
    for i, cell, state in before_exercise:
        shown_errors = [text for mime, text in zip(state["mimes"], state["texts"], strict=True)
                        if mime == "application/vnd.jupyter.stderr" and ERROR_TEXT.search(text)]
        assert not shown_errors, f"cell {i} ({cell.source[:60]!r}) shows: {shown_errors[0][:800]}"
    for i, cell, state in before_exercise:
        assert DONE_PROMPT.match(state["prompt"]), f"cell {i} did not run: {cell.source[:80]!r}"
    assert "NotImplementedError" in cells[exercise]["text"]

    # The streamed answer grew in place, as a Markdown display (JupyterLab ⇒ rich mode).
    assert len(partials) >= 2, f"saw {len(partials)} partial states of the streamed answer"
    assert len(partials[-1]) > len(partials[0])
    assert final["mimes"] == ["text/markdown"], final["mimes"]
    final_answer = answer_text(final, title_text)
    assert len(final_answer) >= len(partials[-1]) > 0
    assert re.search(r"first token \d+\.\d+ s", final["text"]), final["text"][-300:]

    # The batch comparison chart is an image that loaded.
    compare_cell = cells[compared]
    assert "image/png" in compare_cell["mimes"]
    assert compare_cell["images"] and all(width > 0 for width in compare_cell["images"])

    # The student's self-checks.
    assert "Success! Your notebook passes all the tests." in validation, (
        "nbgrader's Validate did not pass the finished exercise. (A NameError for faq_answers "
        "means the answer cell itself failed, e.g. a ReadTimeout: ChatNVIDIA gives up on a "
        f"request after 60 s by default.)\n{validation}")
    assert unfinished.returncode == 1, unfinished_out[-3000:]
    assert "VALIDATION FAILED" in unfinished_out and "not all tests pass yet" in unfinished_out

    # Nothing left running: JupyterLab, its kernels, chromium, the Playwright driver.
    assert_nothing_left(before, tmp_path)

    seconds = time.monotonic() - started
    (shots / "run-time.txt").write_text(
        f"browser test: {seconds:.1f} s (JupyterLab session {lab_stopped - started:.1f} s)\n")
    print(f"browser test run time: {seconds:.1f} s")
