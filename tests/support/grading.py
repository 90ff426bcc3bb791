"""Sample submissions for the exercise-grading tests: a released student copy with its answer
filled in and its lessons left out, and what the autograded copy says failed."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat

# nbgrader's stub in an answer cell: inside a function (indented) or at the cell's top level
STUB = re.compile(r"^(?P<indent>[ \t]*)# YOUR CODE HERE\n(?P=indent)raise NotImplementedError\(\)$", re.M)
EXERCISE_HEADING = re.compile(r"^## Exercise", re.M)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def answered(source: str, code: str, after: str = "") -> str:
    """An answer cell's source with `code` in place of the stub: the function's body (indented to
    fit) when the stub is inside a function, else the whole cell; `after` goes at the end of the
    cell, outside the function."""
    stub = STUB.search(source)
    assert stub, "the student copy has the stub where the answer goes"
    code = textwrap.dedent(code).strip("\n")
    if stub["indent"]:
        source = source[:stub.start()] + textwrap.indent(code, stub["indent"]) + source[stub.end():]
    else:
        source = code
    if after:
        source += "\n\n\n" + textwrap.dedent(after).strip() + "\n"
    return source


def exercise_only(student_copy: Path, answer_id: str, code: str, after: str = "") -> nbformat.NotebookNode:
    """The student copy with answer cell `answer_id` answered, minus the lessons: the cells up to
    the setup cell (a notebook's first code cell: the imports, `settings`, the model or client;
    docs/authoring.md), then from the cell with the "## Exercise" heading (else the first answer
    cell) to the end. The exercise's cells use only the setup and the locked cells after the
    answer; a later cell that uses a lesson's state fails ungraded, as when a learner skips the
    lessons."""
    notebook = nbformat.read(student_copy, as_version=4)
    cells = notebook.cells
    answer = next(c for c in cells if grade_id(c) == answer_id)
    answer.source = answered(answer.source, code, after)
    setup = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    first_answer = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    headings = [i for i in range(setup + 1, first_answer) if EXERCISE_HEADING.search(cells[i].source)]
    notebook.cells = cells[: setup + 1] + cells[(headings or [first_answer])[-1]:]
    return notebook


def failing_cells(autograded: Path) -> dict[str, str]:
    """grade_id -> the error's message, for the graded cells of an autograded notebook that failed."""
    notebook = nbformat.read(autograded, as_version=4)
    return {grade_id(c): next(o for o in c.outputs if o.output_type == "error").evalue
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
            and any(o.output_type == "error" for o in c.get("outputs", []))}
