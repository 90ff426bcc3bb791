"""Student copies are nbgrader's output, in sync with solutions/, and carry no outputs or secrets."""

from __future__ import annotations

import json
import re

import pytest

from llm_kit.grading import course

from support import REPO

SECRET_PATTERNS = [
    re.compile(r"nvapi-[A-Za-z0-9_\-]{8,}"),  # NVIDIA API keys
    re.compile(r"token=[A-Za-z0-9_\-]{16,}"),  # Jupyter tokens in URLs
    re.compile(r"(?i)(api[_-]?key|secret|password)\s*=\s*['\"][^'\"]{8,}['\"]"),
    re.compile(r"sk-[A-Za-z0-9]{20,}"),
]
ALL_NOTEBOOKS = sorted((REPO / "solutions").glob("*.ipynb")) + sorted(
    (REPO / "notebooks").glob("*.ipynb"))


def test_every_solution_has_a_student_copy_and_nothing_else():
    solutions = {p.name for p in (REPO / "solutions").glob("*.ipynb")}
    students = {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
    assert solutions, "no notebooks found"
    assert solutions == students


def test_release_regenerates_notebooks_exactly(tmp_path):
    generated = tmp_path / "notebooks"
    course.release(course=tmp_path / "course", notebooks=generated)
    for committed in sorted((REPO / "notebooks").glob("*.ipynb")):
        fresh = generated / committed.name
        assert json.loads(committed.read_text()) == json.loads(fresh.read_text()), (
            f"notebooks/{committed.name} differs from what `make release` generates from "
            f"solutions/{committed.name}; never edit student copies by hand")


def test_student_copies_hide_solutions_and_hidden_tests():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, path.name
        assert "NotImplementedError" in text, f"{path.name} has no exercise left for students"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebook_has_no_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: clear outputs before committing"
            assert cell.get("execution_count") is None, path.name


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebook_has_no_secrets(path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{path.name} contains something like a secret: {pattern.pattern}"


def test_secret_scan_catches_a_key():
    leaked = 'NVIDIA_API_KEY = "' + "nvapi-" + "x1" * 10 + '"'  # built here, never stored whole
    assert any(p.search(leaked) for p in SECRET_PATTERNS)



def cells_that_can_fail_unanswered(notebook: dict) -> list[int]:
    """Indices of the answer and test cells, and of the cells after the first answer that use it."""
    cells = notebook["cells"]
    answers = [i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("solution")]
    names = [cells[i]["metadata"]["nbgrader"]["grade_id"] for i in answers]
    found = []
    for i, cell in enumerate(cells):
        meta = cell["metadata"].get("nbgrader", {})
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and i >= answers[0] and (
                meta.get("solution") or meta.get("grade")
                or any(re.search(rf"\b{name}\b", source) for name in names)):
            found.append(i)
    return found


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_run_all_goes_past_an_unanswered_exercise(path):
    """JupyterLab's Run All stops at the first failing cell unless the cell is tagged
    raises-exception (it is then sent with stop_on_error false; nbclient has the same rule), so
    every cell that fails while the exercise is unanswered carries that tag, and Run All reaches
    the notebook's end, clean-up included. Lesson cells before the exercise must not."""
    notebook = json.loads(path.read_text())
    can_fail = cells_that_can_fail_unanswered(notebook)
    assert can_fail, "no exercise found"
    for i, cell in enumerate(notebook["cells"]):
        tagged = "raises-exception" in cell["metadata"].get("tags", [])
        assert tagged == (i in can_fail), (
            f"{path.name} cell {i}: {'tag' if i in can_fail else 'untag'} it raises-exception")
