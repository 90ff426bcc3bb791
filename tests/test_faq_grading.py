"""End-to-end nbgrader grading of the FAQ exercise against the real offline server.

Sample submissions are built from the student copy; exact scores come from nbgrader's CSV export.
"""

from __future__ import annotations

import csv
import os
import time

import nbformat
import pytest

from llm_kit.grading import course

from notebook_runner import REPO

pytestmark = pytest.mark.timeout(1800)  # autograding seven submissions, one of them timing out

AID = "02_streaming_and_batching"
FULL_MARKS = 10

SUBMISSIONS = {
    # student id: (answer cell source, expected score, keep the whole notebook?)
    "correct": ("faq_answers = llm.batch(faq_questions)", 10, True),
    "invoke_loop": ("faq_answers = [llm.invoke(q) for q in faq_questions]", 7, False),
    "plain_strings": ("faq_answers = [m.content for m in llm.batch(faq_questions)]", 8, False),
    "raises": ("faq_answers = llm.batch(faq_question)  # typo: NameError", 0, False),
    "infinite_loop": ("while True:\n    pass", 0, False),
    "redefines_document": ("faq_answers = llm.batch(faq_questions)\n\n"
                           "def create_faq_document(questions, answers):\n    return 'FAQ'", 8, False),
    "deletes_questions": ("faq_answers = llm.batch(faq_questions)\ndel faq_questions", 5, False),
}


def _submission(answer_source: str, whole: bool) -> nbformat.NotebookNode:
    notebook = nbformat.read(REPO / "notebooks" / f"{AID}.ipynb", as_version=4)
    cells = notebook.cells
    answer = next(c for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == "faq_answers")
    answer.source = answer_source
    if not whole:  # a student who skipped the demo cells: setup + the exercise only
        setup = next(i for i, c in enumerate(cells) if "ChatNVIDIA(" in c.source)
        exercise = next(i for i, c in enumerate(cells) if c.source.startswith("---\n## Exercise"))
        notebook.cells = cells[: setup + 1] + cells[exercise:]
    return notebook


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    course.release(course=root, notebooks=tmp_path_factory.mktemp("release"))
    for student, (source, _, whole) in SUBMISSIONS.items():
        folder = root / "submitted" / student / AID
        folder.mkdir(parents=True)
        nbformat.write(_submission(source, whole), folder / f"{AID}.ipynb")
    env = course.grading_env(offline_server.base_url, "smollm2-135m-instruct")
    env["KIT_CELL_TIMEOUT_S"] = os.environ.get("KIT_CELL_TIMEOUT_S", "90")
    started = time.perf_counter()
    done = course.nbgrader(["autograde", AID, "--create", "--force"], course=root, env=env,
                           check=False)
    seconds = time.perf_counter() - started
    print(done.stdout[-3000:], done.stderr[-3000:])
    print(f"autograded {len(SUBMISSIONS)} submissions in {seconds:.0f} s "
          f"({seconds / len(SUBMISSIONS):.0f} s each, one of them a {env['KIT_CELL_TIMEOUT_S']} s timeout)")
    course.nbgrader(["generate_feedback", AID, "--force"], course=root)
    grades_csv = root / "grades.csv"
    course.nbgrader(["export", f"--CsvExportPlugin.to={grades_csv}"], course=root)
    with grades_csv.open() as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == AID}
    return root, rows


@pytest.mark.parametrize("student", list(SUBMISSIONS))
def test_exact_score(graded, student):
    _, rows = graded
    expected = SUBMISSIONS[student][1]
    assert student in rows, f"{student} was not graded (the others must still be)"
    assert float(rows[student]["max_score"]) == FULL_MARKS
    assert float(rows[student]["score"]) == expected


def test_feedback_is_readable_for_a_raising_answer(graded):
    root, _ = graded
    html = (root / "feedback" / "raises" / AID / f"{AID}.html").read_text()
    assert "NameError" in html and "faq_question" in html


def test_timed_out_cell_is_reported(graded):
    root, _ = graded
    notebook = nbformat.read(root / "autograded" / "infinite_loop" / AID / f"{AID}.ipynb", 4)
    errors = [o for c in notebook.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert any("Timeout" in o.ename or "Interrupt" in o.ename for o in errors), [o.ename for o in errors]
