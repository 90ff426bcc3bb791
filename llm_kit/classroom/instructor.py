"""The instructor's side of nbgrader's exchange: release an assignment, collect what learners
submitted, autograde it with the kit's concurrent autograder, release the feedback."""

from __future__ import annotations

from pathlib import Path

from helpers.friendly_errors import KitError
from helpers.settings import OFFLINE_MODEL_ID

from ..grading import course
from ..grading.collect import Submission
from .settings import room_from_env


def _exchange_args() -> list[str]:
    return [f"--Exchange.root={room_from_env().exchange}"]


def _known(assignment: str) -> str:
    if assignment not in course.assignments():
        raise KitError(f"No assignment {assignment!r}; one of: {', '.join(course.assignments())}.")
    return assignment


def release(assignment: str) -> None:
    """Generate the student copy from solutions/ and put it in the exchange for learners to fetch."""
    course.generate([_known(assignment)])
    course.nbgrader(["release_assignment", assignment, "--force", *_exchange_args()])
    print(f"released {assignment} to {room_from_env().exchange} (learners: Assignments tab → Fetch)")


def collect(assignment: str) -> list[Submission]:
    """nbgrader collect: each learner's latest submission into course/submitted/."""
    course.nbgrader(["collect", _known(assignment), "--update", *_exchange_args()])
    found = submitted(assignment)
    print(f"collected {len(found)} submissions of {assignment}: "
          + (", ".join(s.student for s in found) or "none"))
    return found


def submitted(assignment: str, course_dir: Path | None = None) -> list[Submission]:
    """The collected submissions of `assignment`, in nbgrader's layout."""
    from datetime import datetime

    root = (course_dir or course.COURSE) / "submitted"
    return [Submission(folder.parent.name, assignment, folder / f"{assignment}.ipynb",
                       str(folder), datetime.fromtimestamp(folder.stat().st_mtime))
            for folder in sorted(root.glob(f"*/{assignment}")) if (folder / f"{assignment}.ipynb").is_file()]


def grade(assignment: str, jobs: int, server_port: int) -> int:
    """Autograde the collected submissions, `jobs` at a time (what `make autograde` runs)."""
    from ..grading.autograde import grade_all
    from ..grading.cli import offline_backend

    found = submitted(_known(assignment))
    if not found:
        raise KitError(f"Nothing collected for {assignment}: run `llm-kit classroom collect {assignment}`.")
    course.generate([assignment])
    with offline_backend(server_port) as base_url:
        env = course.grading_env(base_url, OFFLINE_MODEL_ID)
        print(f"autograding {len(found)} submissions of {assignment}, {jobs} at a time", flush=True)
        results = grade_all(found, env, jobs, out=lambda line: print(line, flush=True))
    failed = [r for r in results if r.score is None]
    for result in failed:
        print(f"⚠ not graded: {result.student}: {result.problem}")
    return 1 if failed else 0


def feedback(assignment: str) -> None:
    """Feedback HTML for every graded submission, released for learners to fetch."""
    course.nbgrader(["generate_feedback", _known(assignment), "--force"])
    course.nbgrader(["release_feedback", assignment, *_exchange_args()])
    print(f"feedback for {assignment} released (learners: Assignments tab → Fetch Feedback)")
