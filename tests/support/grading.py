"""Sample submissions for the exercise-grading tests: a released student copy with its answer
filled in and its lessons left out, and what the autograded copy says failed."""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from pathlib import Path

import nbformat

# nbgrader's stub in an answer cell: inside a function (indented) or at the cell's top level
STUB = re.compile(r"^(?P<indent>[ \t]*)# YOUR CODE HERE\n(?P=indent)raise NotImplementedError\(\)$", re.M)
EXERCISE_HEADING = re.compile(r"^## Exercise", re.M)
# Notebook 2's FAQ answered with one batch call (full marks) and with a loop of invoke (the
# batch rule fails): shared by the grading and the classroom tests.
FAQ_BY_BATCH = "faq_answers = llm.batch(faq_questions)"
FAQ_BY_LOOP = "faq_answers = [llm.invoke(q) for q in faq_questions]"


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
    docs/authoring.md), the lesson cells that define a name the exercise's nbgrader cells read (and
    those that define what they read in turn: a tool a lesson wrote and the exercise builds on),
    then from the cell with the "## Exercise" heading (else the first answer cell) to the end. A
    later ungraded cell that uses the rest of the lessons fails, as when a learner skips them."""
    notebook = nbformat.read(student_copy, as_version=4)
    cells = notebook.cells
    answer = next(c for c in cells if grade_id(c) == answer_id)
    answer.source = answered(answer.source, code, after)
    setup = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    first_answer = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    headings = [i for i in range(setup + 1, first_answer) if EXERCISE_HEADING.search(cells[i].source)]
    start = (headings or [first_answer])[-1]
    graded = [c for c in cells[start:] if c.cell_type == "code" and c.metadata.get("nbgrader")]
    available = set().union(*(names(c.source)[0] for c in cells[: setup + 1] + cells[start:]
                              if c.cell_type == "code"))
    needed = set().union(*(names(c.source)[1] for c in graded)) - available
    lessons = {i: names(cells[i].source) for i in range(setup + 1, start) if cells[i].cell_type == "code"}
    kept: set[int] = set()
    while definers := {i for i, (defines, _) in lessons.items() if i not in kept and defines & needed}:
        kept |= definers
        needed |= set().union(*(lessons[i][1] for i in definers)) - available
    notebook.cells = cells[: setup + 1] + [cells[i] for i in sorted(kept)] + cells[start:]
    return notebook


def names(source: str) -> tuple[set[str], set[str]]:
    """(the names a cell defines at its top level, the names it reads and does not bind itself);
    a cell that is not plain Python (a magic) has neither."""
    try:
        tree = compile(source, "<cell>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return set(), set()
    defines: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defines.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defines |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in getattr(node, "targets", None) or [node.target]:
                defines |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    nodes = list(ast.walk(tree))
    bound = {n.id for n in nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {n.arg for n in nodes if isinstance(n, ast.arg)} | defines
    reads = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return defines, reads - bound - set(dir(builtins))


def failing_cells(autograded: Path) -> dict[str, str]:
    """grade_id -> the error's message, for the graded cells of an autograded notebook that failed."""
    notebook = nbformat.read(autograded, as_version=4)
    return {grade_id(c): next(o for o in c.outputs if o.output_type == "error").evalue
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
            and any(o.output_type == "error" for o in c.get("outputs", []))}
