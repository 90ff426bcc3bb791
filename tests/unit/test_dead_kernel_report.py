"""A submission whose kernel dies: graded up to the cell it died in, and reported to the instructor
in one sentence (the likely cause and what to do), never as a traceback fragment. The real case
(`os._exit` in the FAQ answer) is in tests/workflows/test_exercise_grading.py."""

from __future__ import annotations

import nbformat
import pytest
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.utils import determine_grade

from llm_kit.grading.autograde import Result, _problem, progress_line
from llm_kit.grading.course import autograde_steps
from llm_kit.grading.execute import DIED, NOT_RUN, Execute, error_output, kernel_death

AID = "02_streaming_and_batching"
# nbgrader's log when nbgrader's own Execute meets a dead kernel (trimmed; as captured)
DEAD_KERNEL_LOG = """\
[AutogradeApp | INFO] Autograding /c/autograded/kai/02/02.ipynb
[AutogradeApp | ERROR] Kernel died while waiting for execute reply.
[AutogradeApp | ERROR] There was an error processing assignment: /c/submitted/kai/02
[AutogradeApp | ERROR] Traceback (most recent call last):
      File ".../nbclient/client.py", line 1009, in async_execute_cell
        raise DeadKernelError("Kernel died") from None
    nbclient.exceptions.DeadKernelError: Kernel died
[AutogradeApp | WARNING] Removing failed assignment: /c/autograded/kai/02
[AutogradeApp | ERROR] There was an error processing assignment '02' for student 'kai'
[AutogradeApp | ERROR] Please see the the above traceback for details on the specific errors on the \
above failures.
"""
GRADED = {"grade": True, "solution": False, "locked": True, "points": 2, "grade_id": "test_it",
          "schema_version": 3}
ANSWER = {"grade": False, "solution": True, "locked": False, "grade_id": "faq_answers", "schema_version": 3}


def _is_one_sentence(text: str) -> None:
    assert "\n" not in text and "Traceback" not in text and "raise " not in text, text
    assert "DeadKernelError" not in text and " / " not in text, text
    assert "kernel died" in text and "os._exit" in text and "memory" in text, text


def test_a_dead_kernel_in_nbgraders_log_reads_as_one_sentence():
    problem = _problem(DEAD_KERNEL_LOG)
    _is_one_sentence(problem)
    assert "grade it by hand" in problem


def test_other_failures_still_quote_nbgraders_log():
    log = "[AutogradeApp | ERROR] No notebooks found, did you forget to run 'nbgrader generate_assignment'?"
    assert _problem(log) == log.strip()


def _notebook(*cells) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("# FAQ"), *cells])


def test_the_cell_the_kernel_died_in_is_named_for_the_instructor(tmp_path):
    died = _notebook(new_code_cell("import os"),
                     new_code_cell("os._exit(1)", metadata={"nbgrader": ANSWER},
                                   outputs=[error_output(DIED, "died")]),
                     new_code_cell("assert True", metadata={"nbgrader": GRADED},
                                   outputs=[error_output(NOT_RUN, "not run")]))
    nbformat.write(died, tmp_path / "died.ipynb")
    note = kernel_death(tmp_path / "died.ipynb")
    _is_one_sentence(note)
    assert note.startswith("the kernel died in code cell 2 (faq_answers), likely crashed or out of memory")
    assert "grade by hand" in note

    fine = _notebook(new_code_cell("1 / 0", outputs=[error_output("ZeroDivisionError", "division by zero")]))
    nbformat.write(fine, tmp_path / "fine.ipynb")
    assert kernel_death(tmp_path / "fine.ipynb") == ""
    assert kernel_death(tmp_path / "missing.ipynb") == ""


def test_the_progress_line_carries_the_sentence_after_the_score():
    note = "the kernel died in code cell 2 (faq_answers), likely crashed or out of memory"
    line = progress_line(Result("kai", AID, 0, 10, 3.2, note=note), 1, 1, 3.4)
    assert line == f"[1/1] kai · {AID} · 0/10 · {note} · 3 s · all done in 3 s"
    failed = progress_line(Result("kai", AID, None, None, 3.2, _problem(DEAD_KERNEL_LOG)), 1, 2, 3.4)
    assert failed.startswith(f"[1/2] kai · {AID} · not graded: the kernel died, likely ")
    graded = progress_line(Result("ada", AID, 10, 10, 3.2), 2, 2, 7.0)
    assert graded.endswith("· 10/10 · 3 s · all done in 7 s")


def test_after_a_dead_kernel_the_later_cells_fail_as_not_run(monkeypatch):
    """The kit's Execute without a kernel: executing the second cell raises nbclient's
    DeadKernelError, as a real dead kernel does."""
    notebook = _notebook(new_code_cell("x = 1"), new_code_cell("os._exit(1)", metadata={"nbgrader": ANSWER}),
                         new_markdown_cell("## Tests"),
                         new_code_cell("assert x", metadata={"nbgrader": GRADED},  # run before: stale
                                       outputs=[nbformat.v4.new_output("stream", name="stdout", text="")]))
    execute, ran = Execute(), []

    def execute_cell(cell, index, **kwargs):
        ran.append(index)
        if "_exit" in cell.source:
            raise DeadKernelError("Kernel died")
        return cell

    monkeypatch.setattr(execute, "execute_cell", execute_cell)
    for index, cell in enumerate(notebook.cells):
        execute.preprocess_cell(cell, {}, index)
    assert ran == [0, 1, 2]  # nothing is sent to the dead kernel
    outputs = [[(o.output_type, o.get("ename")) for o in cell.get("outputs", [])] for cell in notebook.cells]
    assert outputs == [[], [], [("error", DIED)], [], [("error", NOT_RUN)]]
    assert "crashed it or ran it out of memory" in notebook.cells[2].outputs[0].evalue  # the student reads it
    assert determine_grade(notebook.cells[4]) == (0, 2)


@pytest.mark.parametrize("step", autograde_steps())
def test_autograde_runs_nbgraders_steps_with_the_kits_execute(step):
    module, _, name = step.rpartition(".")
    assert name in ("Execute", "IgnorePattern", "ClearMetadataPreprocessor", "LimitOutput",
                    "SaveAutoGrades", "AssignLatePenalties", "CheckCellMetadata")
    if name == "Execute":
        assert module == "llm_kit.grading.execute"
