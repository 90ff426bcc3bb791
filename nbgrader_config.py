"""nbgrader settings for the kit (`llm-kit grade ...` passes the course folder explicitly).

Layout: the instructor notebooks in solutions/ are the nbgrader sources, one assignment per
notebook (assignment id = file stem); `llm-kit grade release` runs `nbgrader
generate_assignment` in the git-ignored course/ folder and copies the student copies to
notebooks/. Submissions, autograded work, feedback and the gradebook live in course/.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by nbgrader

course = Path(os.environ.get("KIT_COURSE_DIR") or Path(__file__).resolve().parent / "course")
c.CourseDirectory.course_id = "llm-streaming-batching"
c.CourseDirectory.root = str(course)
c.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"

# Autograding runs every notebook top to bottom against the offline server. A cell that
# runs longer than this (an infinite loop, a hung request) is interrupted, recorded as
# an error, and grading goes on with the next cell and the next student.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
