"""End-to-end nbgrader grading of the FAQ exercise against the real offline server.

Sample submissions are built from the student copy, saved under the names LMS and JupyterHub
downloads give them, collected and autograded concurrently the way `llm-kit grade autograde`
does; exact scores come from nbgrader's CSV export of the course gradebook.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest

from llm_kit.grading import course
from llm_kit.grading.autograde import grade_all
from llm_kit.grading.collect import collect

from notebook_runner import REPO

pytestmark = [pytest.mark.server, pytest.mark.timeout(1500)]

AID = "02_streaming_and_batching"
FULL_MARKS = 10
JOBS = 4
LOOP = "faq_answers = [llm.invoke(q) for q in faq_questions]"
OWN_MODEL = ("ChatNVIDIA(base_url=settings.base_url, model=settings.model, temperature=0, "
             "max_completion_tokens=settings.max_answer_tokens)")

SUBMISSIONS = {
    # student: (file name as downloaded, answer cell source, expected score)
    "correct": (f"{AID}.ipynb", "faq_answers = llm.batch(faq_questions)", 10),
    # every way of sending the ten questions through a chat model with batch scores full marks
    "own_model": (f"{AID} (1).ipynb", f"llm = {OWN_MODEL}\nfaq_answers = llm.batch(faq_questions)", 10),
    "chain": (f"{AID}-2.ipynb", textwrap.dedent(f"""\
        from langchain_core.prompts import ChatPromptTemplate

        prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{{q}}")])
        chain = prompt | {OWN_MODEL}.with_config(run_name="faq")
        faq_answers = chain.batch([{{"q": q}} for q in faq_questions])"""), 10),
    "wrapped": (f"{AID}-Copy1.ipynb", textwrap.dedent("""\
        from langchain_core.runnables import RunnableLambda

        faq_answers = await RunnableLambda(lambda q: llm.invoke(q)).abatch(faq_questions)"""), 10),
    "invoke_loop": (f"{AID}.ipynb", LOOP, 7),
    # a loop that rebinds what the visible test imports: the hidden tests are not fooled
    "loop_rebinds_helper": (f"{AID}.ipynb", LOOP + textwrap.dedent("""
        import helpers.grading.call_log as grading_helpers

        grading_helpers.max_overlap = lambda calls: 10"""), 7),
    # ... nor by editing the grader's own copy it can ask for
    "loop_edits_grader": (f"{AID}.ipynb", LOOP + textwrap.dedent("""
        import sys

        found = []
        sys.audit("llm_kit.grading", found)
        shared = found[0].max_overlap
        found[0].max_overlap = lambda calls: 10
        shared.__code__ = (lambda calls: 10).__code__  # refused: PermissionError"""), 7),
    "plain_strings": (f"{AID}.ipynb", "faq_answers = [m.content for m in llm.batch(faq_questions)]", 8),
    "raises": (f"{AID}.ipynb", "faq_answers = llm.batch(faq_question)  # typo: NameError", 0),
    "infinite_loop": (f"{AID}.ipynb", "while True:\n    pass", 0),
    "redefines_document": (f"{AID}.ipynb", "faq_answers = llm.batch(faq_questions)\n\n"
                           "def create_faq_document(questions, answers):\n    return 'FAQ'", 8),
    "deletes_questions": (f"{AID}.ipynb", "faq_answers = llm.batch(faq_questions)\ndel faq_questions", 8),
}


def exercise_only(answer_source: str) -> nbformat.NotebookNode:
    """The student copy with the answer filled in, minus the lesson cells (setup + exercise)."""
    notebook = nbformat.read(REPO / "notebooks" / f"{AID}.ipynb", as_version=4)
    cells = notebook.cells
    answer = next(c for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == "faq_answers")
    assert "faq_answers = ..." in answer.source, "the stub shows what to assign"
    answer.source = answer_source
    setup = next(i for i, c in enumerate(cells) if "ChatNVIDIA(" in c.source)
    exercise = next(i for i, c in enumerate(cells) if c.source.startswith("---\n## Exercise"))
    notebook.cells = cells[: setup + 1] + cells[exercise:]
    return notebook


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    course.generate([AID], course=root)
    folder = tmp_path_factory.mktemp("downloads")
    for student, (name, source, _) in SUBMISSIONS.items():
        (folder / student).mkdir()
        nbformat.write(exercise_only(source), folder / student / name)
    found = collect(folder, course.assignments())
    assert not found.skipped, found.report()
    env = course.grading_env(offline_server.base_url, "smollm2-135m-instruct")
    env["KIT_CELL_TIMEOUT_S"] = "90"
    lines: list[str] = []
    started = time.perf_counter()
    results = grade_all(found.taken, env, jobs=JOBS, course=root, out=lines.append)
    seconds = time.perf_counter() - started
    print("\n".join(lines))
    print(f"autograded {len(results)} submissions in {seconds:.0f} s, {JOBS} at a time")
    course.nbgrader(["generate_feedback", AID, "--force"], course=root)
    grades_csv = root / "grades.csv"
    course.nbgrader(["export", f"--CsvExportPlugin.to={grades_csv}"], course=root)
    with grades_csv.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["assignment"] == AID]
    return root, rows, lines


@pytest.mark.parametrize("student", list(SUBMISSIONS))
def test_exact_score(graded, student):
    _, rows, _ = graded
    mine = [row for row in rows if row["student_id"] == student]
    assert len(mine) == 1, f"{student} was not graded (the others must still be)"
    assert float(mine[0]["max_score"]) == FULL_MARKS
    assert float(mine[0]["score"]) == SUBMISSIONS[student][2]


def test_gradebook_holds_every_submission_once_with_a_progress_line_each(graded):
    _, rows, lines = graded
    assert sorted(row["student_id"] for row in rows) == sorted(SUBMISSIONS)
    assert len(lines) == len(SUBMISSIONS)
    for student, (_, _, expected) in SUBMISSIONS.items():
        line = next(line for line in lines if f"] {student} · " in line)
        assert f" · {AID} · {expected}/{FULL_MARKS} · " in line, line
    assert "ETA" in lines[0] and "all done" in lines[-1]


def test_feedback_names_what_the_tampering_changed(graded):
    root, _, _ = graded
    html = (root / "feedback" / "loop_rebinds_helper" / AID / f"{AID}.html").read_text()
    assert "helpers.grading.call_log.max_overlap" in html
    assert "use one batch call, not a loop of invoke" in html


def test_feedback_is_readable_for_a_raising_answer(graded):
    root, _, _ = graded
    html = (root / "feedback" / "raises" / AID / f"{AID}.html").read_text()
    assert "NameError" in html and "faq_question" in html


def test_timed_out_cell_is_reported(graded):
    root, _, _ = graded
    notebook = nbformat.read(root / "autograded" / "infinite_loop" / AID / f"{AID}.ipynb", 4)
    errors = [o for c in notebook.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert any("Timeout" in o.ename or "Interrupt" in o.ename for o in errors), [o.ename for o in errors]


RECORDER_CHECKS = textwrap.dedent("""
    import sys, time
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    import helpers.grading.call_log as helpers_log

    class Slow(BaseChatModel):  # a fake model that takes a while, for the recorder alone
        @property
        def _llm_type(self):
            return "slow"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            time.sleep(0.05)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])

    log = helpers_log.record_calls()
    assert helpers_log.record_calls().calls == log.calls, "installed once per kernel"
    prompts = ["a", "b", "c"]
    Slow().batch(prompts)
    assert helpers_log.max_overlap(log.latest_for(prompts)) == 3
    for prompt in prompts:
        Slow().invoke(prompt)
    helpers_log.max_overlap = lambda calls: 99
    found = []
    sys.audit(helpers_log.GRADING_EVENT, found)
    grading = found[0]
    assert len(found) == 1 and grading.max_overlap(grading.latest_for(prompts)) == 1
    try:
        grading.max_overlap.__code__ = (lambda calls: 99).__code__
    except PermissionError:
        pass
    else:
        raise SystemExit("the grader's functions can be rewritten")
    from langchain_core.tracers.context import _configure_hooks
    recorder = next(var.get() for var, *_ in _configure_hooks if var.name == "llm_kit_call_recorder")
    type(recorder).on_chat_model_start = lambda *args, **kwargs: None
    try:
        grading.verify()
    except AssertionError as exc:
        print("verify:", exc)
""")


def test_recorder_cannot_be_fooled_by_rebinding(tmp_path):
    """Unit check of the recorder in a fresh interpreter (its hooks last for the process)."""
    done = subprocess.run([sys.executable, "-c", RECORDER_CHECKS], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "helpers.grading.call_log.max_overlap" in done.stdout, done.stdout
    assert "verify: the call recorder was changed by this notebook" in done.stdout, done.stdout
