"""nbgrader settings for the kit, read by nbgrader's JupyterLab tools (Validate, Formgrader) and
the `nbgrader` command run from the repository root. The values live in one place,
llm_kit/grading/course.py, which `llm-kit grade ...` passes to nbgrader explicitly.

Layout: the instructor notebooks in solutions/ are the nbgrader sources, one assignment per
notebook (assignment id = file stem); `llm-kit grade release` runs `nbgrader
generate_assignment` in the git-ignored course/ folder and copies the student copies to
notebooks/. Submissions, autograded work, feedback and the gradebook live in course/.
"""

from llm_kit.grading.course import CELL_TIMEOUT_S, COURSE, COURSE_ID, OUTPUT_TIMEOUT_S, autograde_steps

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.root = str(COURSE)
c.CourseDirectory.db_url = f"sqlite:///{COURSE / 'gradebook.db'}"

# Autograding runs every notebook top to bottom against the offline server. A cell that
# runs longer than this (an infinite loop, a hung request) is interrupted, recorded as
# an error, and grading goes on with the next cell and the next student.
c.Execute.timeout = CELL_TIMEOUT_S
c.Execute.interrupt_on_timeout = True
c.Execute.iopub_timeout = OUTPUT_TIMEOUT_S
# A kernel that dies (os._exit, out of memory) fails its cell and the cells after it; the rest is
# still graded (llm_kit/grading/execute.py).
c.Autograde.autograde_preprocessors = autograde_steps()
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
