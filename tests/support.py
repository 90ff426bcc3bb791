"""What several test files share: a fake clock, and finding the kit's processes and tools.
(Test files import from here, never from each other.)"""

from __future__ import annotations

import sys
from pathlib import Path

from llm_kit.offline.config import ENGINE_MODULE


class FakeClock:
    """A clock that advances only when told to (`clock.now += 0.5`), or by `step` per read."""

    def __init__(self, now: float = 100.0, step: float = 0.0):
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def offline_server_pids(port: int) -> list[int]:
    """Live (non-zombie) offline server processes started with `--port <port>`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and ENGINE_MODULE.encode() in argv and b"--port" in argv:
            if argv[argv.index(b"--port") + 1:][:1] == [str(port).encode()]:
                found.append(int(entry.name))
    return found


def venv_tool(name: str) -> str:
    """A console script of the interpreter running the tests (its venv), else from PATH."""
    import shutil

    import pytest

    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make setup` (it comes with the [dev] extras).")
    return found


# ── grading one exercise through real nbgrader ──────────────────────────────────────────────

STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"


def with_answer(student_copy: Path, grade_id: str, code: str, module_code: str = ""):
    """The released student copy with `code` in place of the stub of answer cell `grade_id`
    (and `module_code` at the end of that cell, outside the function)."""
    import textwrap

    import nbformat

    notebook = nbformat.read(student_copy, as_version=4)
    cell = next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert STUB in cell.source, "the student copy has the stub where the answer goes"
    cell.source = cell.source.replace(STUB, textwrap.indent(textwrap.dedent(code).strip(), "    "))
    if module_code:
        cell.source += "\n\n\n" + textwrap.dedent(module_code).strip() + "\n"
    return notebook


def autograde_answers(aid: str, grade_id: str, answers: dict[str, str | tuple[str, str]],
                      base_url: str, tmp: Path) -> tuple[Path, dict[str, dict]]:
    """Release assignment `aid` into a fresh course under `tmp`, submit one notebook per student
    with their code in answer cell `grade_id` (a function body, or (body, code after the
    function)), autograde, export: (course root, CSV rows)."""
    import csv
    import shutil

    import nbformat

    from helpers.settings import OFFLINE_MODEL_ID
    from llm_kit.grading import course

    solutions, root, released = tmp / "solutions", tmp / "course", tmp / "released"
    solutions.mkdir()
    shutil.copy2(course.SOLUTIONS / f"{aid}.ipynb", solutions)
    course.release(course=root, solutions=solutions, notebooks=released)
    for student, code in answers.items():
        folder = root / "submitted" / student / aid
        folder.mkdir(parents=True)
        body, after = (code, "") if isinstance(code, str) else code
        nbformat.write(with_answer(released / f"{aid}.ipynb", grade_id, body, after),
                       folder / f"{aid}.ipynb")
    env = course.grading_env(base_url, OFFLINE_MODEL_ID)
    done = course.nbgrader(["autograde", aid, "--create", "--force"], course=root, env=env, check=False)
    print(done.stdout[-2000:], done.stderr[-2000:])
    grades_csv = root / "grades.csv"
    course.nbgrader(["export", f"--CsvExportPlugin.to={grades_csv}"], course=root)
    with grades_csv.open() as handle:
        scores = {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == aid}
    return root, scores


def failing_cells(root: Path, aid: str, student: str) -> dict[str, str]:
    """grade_id -> the error's message, for the graded cells of a student's autograded copy
    that failed."""
    import nbformat

    notebook = nbformat.read(root / "autograded" / student / aid / f"{aid}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: next(o for o in c.outputs if o.output_type == "error").evalue
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
            and any(o.output_type == "error" for o in c.get("outputs", []))}
