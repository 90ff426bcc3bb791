"""A submission whose kernel dies is still graded, and the instructor reads why in one sentence.

nbgrader's own Execute gives up on the whole notebook when the kernel dies (`os._exit`, a crash
in native code, an allocation the machine cannot hold): the submission is not graded at all,
and its log holds nbclient's traceback. The kit's Execute, used by `llm-kit grade autograde`
(course.py) and by formgrader (nbgrader_config.py), records the death as an error in the cell
it happened in and marks every later code cell as not run, so nbgrader grades what ran: the
tests after that cell score 0, and the feedback shows the student where it happened.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError
from nbgrader.preprocessors import Execute as NbgraderExecute

DIED = "DeadKernelError"
NOT_RUN = "NotRun"
LIKELY_CAUSE = "crashed or out of memory (e.g. os._exit, a huge allocation)"
DIED_HERE = ("The kernel died while running this cell: the code crashed it or ran it out of memory "
             "(e.g. os._exit, a huge allocation). The cells after it were not run.")
NOT_RUN_HERE = "Not run: the kernel died in an earlier cell."


class Execute(NbgraderExecute):
    """nbgrader's Execute, except that a dead kernel fails its cell and the cells after it."""

    _died = False  # in this notebook, so far

    def preprocess(self, nb, resources=None, km=None):
        self._died = False
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._died:
            if cell.cell_type == "code":
                cell.outputs = [error_output(NOT_RUN, NOT_RUN_HERE)]
                cell.execution_count = None
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._died = True
            self.log.error("The kernel died in cell %d; the cells after it are marked as not run.",
                           index)
            cell.outputs.append(error_output(DIED, DIED_HERE))
            return cell, resources


def error_output(ename: str, evalue: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def kernel_death(autograded: Path) -> str:
    """One sentence for the instructor when the kernel died while grading this notebook, else ""."""
    try:
        notebook = nbformat.read(autograded, as_version=4)
    except (OSError, ValueError):
        return ""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, start=1):
        if any(o.output_type == "error" and o.get("ename") == DIED for o in cell.get("outputs", [])):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            where = f"code cell {number}" + (f" ({grade_id})" if grade_id else "")
            return died_while_grading(where)
    return ""


def died_while_grading(where: str) -> str:
    """The kernel died, the notebook was graded up to that cell."""
    return (f"the kernel died in {where}, likely {LIKELY_CAUSE}: the cells after it scored 0; "
            "read that cell in the autograded notebook and grade by hand if the crash was not "
            "the student's doing")


def died_before_grading() -> str:
    """The kernel died and nbgrader could not grade the notebook at all."""
    return (f"the kernel died, likely {LIKELY_CAUSE}: run the notebook yourself to find the cell, "
            "then grade it by hand or ask the student for a fixed copy")
