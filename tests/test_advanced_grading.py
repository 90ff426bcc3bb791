"""nbgrader grades the exercises of notebooks 4-8 exactly: right, wrong and broken submissions,
built from the student copies, autograded concurrently against the real offline server."""

from __future__ import annotations

import csv
import shutil
import textwrap

import nbformat
import pytest

from llm_kit.grading import course
from llm_kit.grading.autograde import grade_all
from llm_kit.grading.collect import collect

pytestmark = pytest.mark.server

ANSWER_STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
FULL_MARKS = 4


def body(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")


SSE_RIGHT = body("""
    start, pieces, ttft = clock(), [], None
    for line in lines:
        if line.startswith("event:") and line.split(":", 1)[1].strip() == "done":
            break
        if line.startswith("data:"):
            delta = json.loads(line[5:]).get("delta", "")
            if delta:
                ttft = clock() - start if ttft is None else ttft
                pieces.append(delta)
    return {"text": "".join(pieces), "chunks": len(pieces), "ttft_s": ttft}
""")
SSE_STOP = SSE_RIGHT.splitlines(keepends=True)[2:4]  # the two lines that stop at `event: done`
assert "done" in SSE_STOP[0] and "break" in SSE_STOP[1]

PLAN_RIGHT = body("""
    groups, opened_at = [], None
    for i, arrived in enumerate(arrivals_s):
        if groups and len(groups[-1]) < max_batch_size and arrived - opened_at < wait_s:
            groups[-1].append(i)
        else:
            groups.append([i])
            opened_at = arrived
    return groups
""")
PLAN_OPENS = "            opened_at = arrived"  # in the else: a new group opens the window
assert PLAN_RIGHT.count(PLAN_OPENS + "\n") == 1

# assignment: (answer cell's grade_id, {student: (function body, expected score)})
EXERCISES = {
    "04_streams_as_generators": ("lines_with", {
        "right": (body("""
            wanted = keyword.lower()
            pending = ""
            for chunk in chunks:
                pending += chunk_text(chunk)
                *complete, pending = pending.split("\\n")
                yield from (line for line in complete if wanted in line.lower())
            if wanted in pending.lower():
                yield pending
        """), 4),
        # right lines, but reads the whole stream before the first one: not lazy
        "wrong": (body("""
            text = "".join(chunk_text(chunk) for chunk in chunks)
            return [line for line in text.split("\\n") if keyword.lower() in line.lower()]
        """), 2),
        "broken": (body("""
            raise RuntimeError("I will finish this later")
        """), 0),
    }),
    "05_structured_streaming": ("top_picks", {
        "right": (body("""
            shown = set()
            with closing(stream_items(chunks, model, key=key, on_skip=None)) as items:
                for item in items:
                    if item.product_id not in shown:
                        shown.add(item.product_id)
                        yield item
                        if len(shown) == n:
                            return
        """), 4),
        # right cards, but waits for the whole answer before the first one, and never closes it
        "wrong": (body("""
            shown, cards = set(), []
            for item in stream_items(chunks, model, key=key, on_skip=None):
                if item.product_id not in shown and len(cards) < n:
                    shown.add(item.product_id)
                    cards.append(item)
            return cards
        """), 2),
        "broken": (body("""
            return json.loads("".join(chunks))[key][:n]
        """), 0),
    }),
    "06_serving_streams": ("measure_sse", {
        "right": (SSE_RIGHT, 4),
        # right numbers, but never stops at the done event: hangs on an open connection
        "wrong": (SSE_RIGHT.replace("".join(SSE_STOP), ""), 2),
        "broken": (body("""
            return {"text": lines.decode()}
        """), 0),
    }),
    "07_batching_in_a_service": ("plan_batches", {
        "right": (PLAN_RIGHT, 4),
        # right sizes, but the window slides: it restarts at every arrival, not at the group's first
        "wrong": (PLAN_RIGHT.replace(PLAN_OPENS, PLAN_OPENS[4:]), 2),
        # groups of arrival times, not of request indices, and no window at all
        "broken": (body("""
            return [arrivals_s[i:i + max_batch_size] for i in range(0, len(arrivals_s), max_batch_size)]
        """), 0),
    }),
    "08_async_and_concurrency": ("answer_all", {
        "right": (body("""
            limit_gate = asyncio.Semaphore(limit)

            async def ask(prompt):
                async with limit_gate:
                    return (await llm.ainvoke(prompt)).content

            return await asyncio.gather(*map(ask, prompts), return_exceptions=True)
        """), 4),
        # keeps every answer, in order, but one request at a time
        "wrong": (body("""
            results = []
            for prompt in prompts:
                try:
                    results.append((await llm.ainvoke(prompt)).content)
                except Exception as exc:
                    results.append(exc)
            return results
        """), 2),
        "broken": (body("""
            raise NotImplementedError("no time left")
        """), 0),
    }),
}


def submission(student_copy, grade_id: str, code: str) -> nbformat.NotebookNode:
    """The student copy answered with `code`, without the lessons between the setup cell and the
    exercise (their tests use fakes, not the lessons' state); whole notebooks are graded in
    test_grading_cli and bench/grading.py."""
    notebook = nbformat.read(student_copy, as_version=4)
    cells = notebook.cells
    answer = next(c for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    assert ANSWER_STUB in answer.source, "the student copy has the stub where the answer goes"
    answer.source = answer.source.replace(ANSWER_STUB, code)
    setup = next(i for i, c in enumerate(cells) if "ChatNVIDIA(" in c.source)
    first = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    heading = [i for i in range(setup, first) if cells[i].source.startswith("---\n## Exercise")]
    notebook.cells = cells[: setup + 1] + cells[(heading or [first])[-1]:]
    return notebook


@pytest.fixture(scope="module")
def grades(offline_server, tmp_path_factory):
    """Release notebooks 4-8 into a fresh course, autograde all submissions concurrently (as
    `llm-kit grade autograde` does), export the CSV."""
    tmp = tmp_path_factory.mktemp("advanced-grading")
    solutions, root, released = tmp / "solutions", tmp / "course", tmp / "released"
    solutions.mkdir()
    for aid in EXERCISES:
        shutil.copy2(course.SOLUTIONS / f"{aid}.ipynb", solutions / f"{aid}.ipynb")
    course.release(course=root, solutions=solutions, notebooks=released)
    env = course.grading_env(offline_server.base_url, "smollm2-135m-instruct")
    downloads = tmp / "downloads"
    for aid, (grade_id, students) in EXERCISES.items():
        for student, (code, _) in students.items():
            (downloads / student).mkdir(parents=True, exist_ok=True)
            nbformat.write(submission(released / f"{aid}.ipynb", grade_id, code),
                           downloads / student / f"{aid}.ipynb")
    found = collect(downloads, list(EXERCISES))
    assert len(found.taken) == len(CASES) and not found.skipped, found.report()
    lines: list[str] = []
    grade_all(found.taken, env, jobs=4, course=root, out=lines.append)
    print("\n".join(lines))
    grades_csv = root / "grades.csv"
    course.nbgrader(["export", f"--CsvExportPlugin.to={grades_csv}"], course=root)
    with grades_csv.open() as handle:
        rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(handle)}
    return root, rows


CASES = [(aid, student, expected) for aid, (_, students) in EXERCISES.items()
         for student, (_, expected) in students.items()]


@pytest.mark.parametrize(("aid", "student", "expected"), CASES, ids=[f"{a[:2]}-{s}" for a, s, _ in CASES])
def test_exact_score(grades, aid, student, expected):
    _, rows = grades
    assert (aid, student) in rows, f"{student} was not graded for {aid}"
    row = rows[(aid, student)]
    assert float(row["max_score"]) == FULL_MARKS
    assert float(row["score"]) == expected


@pytest.mark.parametrize("aid", list(EXERCISES))
def test_wrong_answers_fail_the_behaviour_they_miss(grades, aid):
    root, _ = grades
    notebook = nbformat.read(root / "autograded" / "wrong" / aid / f"{aid}.ipynb", as_version=4)
    failed = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
              if c.metadata.get("nbgrader", {}).get("grade")
              and any(o.output_type == "error" for o in c.get("outputs", []))]
    expected = {"04_streams_as_generators": ["test_lines_with_is_lazy"],
                "05_structured_streaming": ["test_top_picks_stops"],
                "06_serving_streams": ["test_measure_sse_stops_at_done"],
                "07_batching_in_a_service": ["test_plan_batches_window"],
                "08_async_and_concurrency": ["test_answer_all_concurrency_limit"]}
    assert failed == expected[aid]
