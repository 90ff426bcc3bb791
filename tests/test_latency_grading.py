"""nbgrader grades notebook 7's exercise exactly: a right, a wrong and a broken `latency_stats`,
put into the released student copy and autograded against the real offline server."""

from __future__ import annotations

import csv
import shutil
import textwrap

import nbformat
import pytest

from llm_kit.grading import course

pytestmark = [pytest.mark.server, pytest.mark.timeout(1200)]

AID = "07_latency_and_throughput"
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
FULL_MARKS = 4

RIGHT = """
    firsts, gaps = [], []
    for stream in streams:
        texted = [t for t, piece in zip(stream.arrivals_s, stream.chunk_texts) if piece]
        if texted:
            firsts.append(texted[0])
            gaps.extend(np.diff(texted))
    return {"ttft_p50_s": np.percentile(firsts, 50), "ttft_p95_s": np.percentile(firsts, 95),
            "itl_mean_s": float(np.mean(gaps)) if gaps else None}
"""
# right TTFTs, but ITL over every chunk: the role and finish chunks count as tokens
WRONG = RIGHT.replace("np.diff(texted)", "np.diff(stream.arrivals_s)")
assert WRONG != RIGHT

ANSWERS = {
    # student: (body of latency_stats, expected score, graded cells expected to fail)
    "right": (RIGHT, 4, []),
    "wrong": (WRONG, 2, ["test_latency_stats_itl"]),
    "broken": ('return {"ttft_p50_s": streams[0].first_token}', 0,
               ["test_latency_stats_ttft", "test_latency_stats_itl"]),
}


def with_answer(student_copy, code: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(student_copy, as_version=4)
    cell = next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "latency_stats")
    assert STUB in cell.source, "the student copy has the stub where the answer goes"
    cell.source = cell.source.replace(STUB, textwrap.indent(textwrap.dedent(code).strip(), "    "))
    return notebook


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    """Release notebook 7 into a fresh course, autograde three submissions, export the grades."""
    tmp = tmp_path_factory.mktemp("latency-grading")
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


@pytest.mark.parametrize("student", list(ANSWERS))
def test_exact_score(graded, student):
    _, scores = graded
    assert student in scores, f"{student} was not graded"
    assert float(scores[student]["max_score"]) == FULL_MARKS
    assert float(scores[student]["score"]) == ANSWERS[student][1]


@pytest.mark.parametrize("student", list(ANSWERS))
def test_failing_cells_are_the_behaviour_missed(graded, student):
    root, _ = graded
    notebook = nbformat.read(root / "autograded" / student / AID / f"{AID}.ipynb", as_version=4)
    failed = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
              if c.metadata.get("nbgrader", {}).get("grade")
              and any(o.output_type == "error" for o in c.get("outputs", []))]
    assert failed == ANSWERS[student][2]
    if student == "wrong":  # the visible test says what went wrong
        cell = next(c for c in notebook.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") == "test_latency_stats_itl")
        error = next(o for o in cell.outputs if o.output_type == "error")
        assert "role chunk" in error.evalue
