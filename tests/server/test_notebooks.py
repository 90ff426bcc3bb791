"""Every lesson notebook (found in solutions/, nothing to register) runs top to bottom against the
real offline server and leaves no process behind; its student copy fails only at its unanswered
exercise. Each notebook's measured claims are asserted in its own test file."""

from __future__ import annotations

import re

import pytest

from notebook_runner import assert_nothing_left_behind, notebook_names, run_notebook

TOP_LEVEL_STREAM = re.compile(r"^(\w+\s*=\s*)?stream_print\(", re.M)


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


@pytest.mark.parametrize("name", notebook_names())
def test_solution_runs_clean_on_the_offline_server(name, offline_server):
    executed = run_notebook("solutions", name)
    assert executed.error is None, f"{name} failed: {executed.error}"
    assert not executed.cells_with_errors()
    text = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    assert "Backend: the offline llama.cpp server" in text
    assert "often wrong" in text  # the offline caveat is shown where answers appear
    for cell in executed.notebook.cells:  # a cell that streams with stream_print at top level
        if cell.cell_type == "code" and TOP_LEVEL_STREAM.search(_source(cell)):
            shown = executed.text_of(cell)
            assert "first token" in shown, "the stats line is saved with the streamed cell"
    assert_nothing_left_behind(executed.marker)


@pytest.mark.parametrize("name", notebook_names())
def test_student_copy_fails_only_at_its_exercise(name, offline_server):
    executed = run_notebook("notebooks", name)
    cells = executed.notebook.cells
    first_answer = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    failing = executed.cells_with_errors()
    assert failing, "an unanswered exercise must fail"
    for cell in failing:
        index = cells.index(cell)
        error = next(o for o in cell.outputs if o.output_type == "error")
        assert index >= first_answer, f"cell {index} failed before the exercise: {error.ename}"
        meta = cell.metadata.get("nbgrader", {})
        # graded cells fail; so do the cells that use the missing answer, which are tagged
        # raises-exception (tests/test_release_sync.py checks which those are)
        uses_the_answer = "raises-exception" in cell.metadata.get("tags", [])
        assert meta.get("solution") or meta.get("grade") or uses_the_answer or error.ename in (
            "NameError", "NotImplementedError"), (
            f"cell {index} failed for another reason: {error.ename}: {error.evalue}")
    assert any(o.output_type == "error" and o.ename == "NotImplementedError"
               for cell in failing for o in cell.outputs), "the exercise stub is what fails"
    assert_nothing_left_behind(executed.marker)  # Run All reached the notebook's clean-up
