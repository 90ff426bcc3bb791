"""Execute notebooks headlessly with nbclient, the way autograding does."""

from __future__ import annotations

import copy
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from support import REPO, assert_none_left


@dataclass
class Executed:
    notebook: nbformat.NotebookNode
    seconds: float
    error: CellExecutionError | str | None
    marker: str = ""  # in the environment of the kernel and of every process it started

    def cells_with_errors(self) -> list[dict]:
        return [c for c in self.notebook.cells if c.cell_type == "code"
                and any(o.output_type == "error" for o in c.get("outputs", []))]

    def text_of(self, cell) -> str:
        """All text a cell showed: stream output, text/plain and text/markdown."""
        parts = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                parts.append(out.data.get("text/markdown", out.data.get("text/plain", "")))
        return "".join(parts)

    def tagged_text(self, tag: str) -> str:
        """What the one cell tagged `tag` showed."""
        cells = [c for c in self.notebook.cells if tag in c.metadata.get("tags", [])]
        assert len(cells) == 1, f"expected one cell tagged {tag!r}"
        return self.text_of(cells[0])


def number(pattern: str, text: str) -> float:
    """The number the regex's first group finds in a cell's output (asserts it is there)."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


def execute(path: Path | nbformat.NotebookNode, allow_errors: bool = False, timeout_s: int = 120,
            env: dict | None = None, workdir: Path | None = None) -> Executed:
    """Run a notebook (a path, or a notebook read already) top to bottom in a fresh kernel;
    returns outputs and wall time."""
    notebook = path if isinstance(path, nbformat.NotebookNode) else nbformat.read(path, as_version=4)
    folder = workdir or (path.parent if isinstance(path, Path) else REPO)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                                allow_errors=allow_errors,
                                resources={"metadata": {"path": str(folder)}})
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except CellExecutionError as exc:
            error = exc
        return Executed(notebook, time.perf_counter() - start, error)
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ── one run of each notebook per test session, shared by every test file ──────────────────

CELL_TIMEOUT_S = 300  # generous: the machine may be busy; the tests assert behaviour, not speed
_RUNS: dict[tuple[str, str], Executed] = {}
_REPORTS: dict[str, str] = {}


def notebook_names() -> list[str]:
    """Every lesson notebook, by file stem (a new one is tested without editing a list)."""
    return sorted(p.stem for p in (REPO / "solutions").glob("[0-9]*.ipynb"))


def register_report(name: str, report: str) -> None:
    """Append `report` (code printing the notebook's own measurements as one JSON line) to the
    session's run of solutions/<name>. Call it at import: files are collected before any run."""
    _REPORTS[name] = report


def run_notebook(folder: str, name: str) -> Executed:
    """solutions/<name> or notebooks/<name> (the student copy), as seen in the session's one run
    of the pair (see `_run_pair`), with plain display and a marker its kernel's processes inherit."""
    if (folder, name) not in _RUNS:
        _run_pair(name)
    return _RUNS[(folder, name)]


def _run_pair(name: str) -> None:
    """Execute a notebook and its student copy as one kernel session, and keep a view of each.

    nbgrader's release changes only the exercise's cells (the sync test proves it), so the two
    share every cell before and after the exercise. The run executes the shared cells once; at
    the exercise it runs the student copy's cells (the unanswered stub fails, as in Run All),
    then the solution's, so the lesson goes on as the solution's own run would. Each view is
    the cells its notebook has, in its order, with the outputs of that run."""
    solution = nbformat.read(REPO / "solutions" / f"{name}.ipynb", as_version=4)
    student = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    assert len(solution.cells) == len(student.cells), f"{name}: student copy out of sync (make release)"
    pairs = zip(solution.cells, student.cells, strict=True)
    differ = [i for i, (a, b) in enumerate(pairs) if a.source != b.source]
    first, last = (differ[0], differ[-1]) if differ else (len(solution.cells), len(solution.cells) - 1)
    before, after = solution.cells[:first], solution.cells[last + 1:]
    student_region = [copy.deepcopy(c) for c in student.cells[first:last + 1]]
    solution_region = [copy.deepcopy(c) for c in solution.cells[first:last + 1]]
    report = ([nbformat.v4.new_code_cell(_REPORTS[name], metadata={"tags": ["measurements"]})]
              if name in _REPORTS else [])
    combined = copy.deepcopy(solution)
    combined.cells = before + student_region + solution_region + after + report
    marker = f"kit-run-{uuid.uuid4().hex}"
    executed = execute(combined, allow_errors=True, timeout_s=CELL_TIMEOUT_S,
                       env={"KIT_RUN_MARKER": marker, "KIT_DISPLAY": "plain"},
                       workdir=REPO / "solutions")
    print(f"\n⏱ solutions/{name}.ipynb and its student copy executed in {executed.seconds:.1f} s")
    for folder, cells in (("solutions", before + solution_region + after + report),
                          ("notebooks", before + student_region + after)):
        view = copy.copy(combined)
        view.cells = cells
        _RUNS[(folder, name)] = Executed(view, executed.seconds, None, marker)
    _RUNS[("solutions", name)].error = _first_error(_RUNS[("solutions", name)])


def _first_error(executed: Executed) -> str | None:
    """What stopped Run All: the first error outside the cells tagged raises-exception."""
    for index, cell in enumerate(executed.notebook.cells):
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                return f"cell {index}: {out.ename}: {out.evalue}"
    return None


def processes_with_marker(marker: str) -> list[tuple[int, list[str]]]:
    """(pid, cmdline) of every live process whose environment carries `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if state != "Z":
            found.append((int(entry.name), [part for part in cmdline if part]))
    return found


def assert_nothing_left_behind(marker: str, timeout_s: float = 20.0) -> None:
    """No process started by the notebook's kernel (Ray's above all) outlives it."""
    assert_none_left(lambda: processes_with_marker(marker), "processes left behind", timeout_s)


def reported(executed: Executed, mark: str) -> dict:
    """The JSON the report cell printed after `mark`."""
    assert executed.error is None, f"the notebook failed: {executed.error}"
    text = executed.text_of(executed.notebook.cells[-1])
    line = next(line for line in text.splitlines() if line.startswith(mark))
    return json.loads(line[len(mark):])
