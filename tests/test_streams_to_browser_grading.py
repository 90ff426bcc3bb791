"""nbgrader grades notebook 8's exercise exactly: a right `in_thread`, two wrong ones and a broken one,
put into the released student copy and autograded against the real offline server."""

from __future__ import annotations

import csv
import shutil
import textwrap

import nbformat
import pytest

from llm_kit.grading import course

pytestmark = [pytest.mark.server, pytest.mark.timeout(1200)]

AID = "08_streams_to_the_browser"
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
FULL_MARKS = 6

RIGHT = """
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    leave = threading.Event()
    done = object()

    def pump():
        try:
            for item in blocking:
                if leave.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, item)
            loop.call_soon_threadsafe(queue.put_nowait, done)
        except Exception as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            close = getattr(blocking, "close", None)
            if close is not None:
                close()

    threading.Thread(target=pump, daemon=True).start()
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        leave.set()
"""
# a thread and a queue, but nothing stops the thread or closes the producer when the consumer leaves
WRONG = RIGHT.replace("""                if leave.is_set():
                    return
""", "").replace("""        finally:
            close = getattr(blocking, "close", None)
            if close is not None:
                close()
""", "")
assert WRONG != RIGHT and "close()" not in WRONG

ANSWERS = {
    # student: (body of in_thread, expected score, graded cells expected to fail)
    "right": (RIGHT, 6, []),
    "wrong": (WRONG, 4, ["test_in_thread_closes"]),
    # iterates the producer in the event loop itself: the items arrive, the loop is blocked
    "in_the_loop": ("for item in blocking:\n    yield item", 2,
                    ["test_in_thread_loop_free", "test_in_thread_closes"]),
    "broken": ("for item in blokcing:\n    yield item", 0,
               ["test_in_thread_items", "test_in_thread_loop_free", "test_in_thread_closes"]),
}


def with_answer(student_copy, code: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(student_copy, as_version=4)
    cell = next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "in_thread")
    assert STUB in cell.source, "the student copy has the stub where the answer goes"
    cell.source = cell.source.replace(STUB, textwrap.indent(textwrap.dedent(code).strip(), "    "))
    return notebook


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    """Release notebook 8 into a fresh course, autograde three submissions, export the grades."""
    tmp = tmp_path_factory.mktemp("streams-to-browser-grading")
    solutions, root, released = tmp / "solutions", tmp / "course", tmp / "released"
    solutions.mkdir()
    shutil.copy2(course.SOLUTIONS / f"{AID}.ipynb", solutions)
    course.release(course=root, solutions=solutions, notebooks=released)
    for student, (code, _, _) in ANSWERS.items():
        folder = root / "submitted" / student / AID
        folder.mkdir(parents=True)
        nbformat.write(with_answer(released / f"{AID}.ipynb", code), folder / f"{AID}.ipynb")
    env = course.grading_env(offline_server.base_url, "smollm2-135m-instruct")
    done = course.nbgrader(["autograde", AID, "--create", "--force"], course=root, env=env, check=False)
    print(done.stdout[-2000:], done.stderr[-2000:])
    grades_csv = root / "grades.csv"
    course.nbgrader(["export", f"--CsvExportPlugin.to={grades_csv}"], course=root)
    with grades_csv.open() as handle:
        scores = {row["student_id"]: row for row in csv.DictReader(handle) if row["assignment"] == AID}
    return root, scores


def failing_cells(root, student) -> dict[str, str]:
    """grade_id -> the error's message, for the graded cells that failed."""
    notebook = nbformat.read(root / "autograded" / student / AID / f"{AID}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: next(o for o in c.outputs if o.output_type == "error").evalue
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")
            and any(o.output_type == "error" for o in c.get("outputs", []))}


@pytest.mark.parametrize("student", list(ANSWERS))
def test_exact_score(graded, student):
    _, scores = graded
    assert student in scores, f"{student} was not graded"
    assert float(scores[student]["max_score"]) == FULL_MARKS
    assert float(scores[student]["score"]) == ANSWERS[student][1]


@pytest.mark.parametrize("student", list(ANSWERS))
def test_failing_cells_are_the_behaviour_missed(graded, student):
    root, _ = graded
    failed = failing_cells(root, student)
    assert sorted(failed) == sorted(ANSWERS[student][2])
    if student == "wrong":  # the visible test says what went wrong
        assert "not closed within 3 s" in failed["test_in_thread_closes"]
    if student == "in_the_loop":
        assert "new thread, not in the loop" in failed["test_in_thread_loop_free"]
    if student == "broken":
        assert "blokcing" in failed["test_in_thread_items"]
