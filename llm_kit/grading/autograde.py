"""Autograde many submissions at once, with one consistent gradebook.

Most of a submission's grading time is spent waiting on the model server, which batches
concurrent requests, so submissions are graded in parallel: each one by its own `nbgrader
autograde --student` run in its own small course folder, with its own copy of the gradebook
(taken once, after the assignments were generated). Nothing is shared between the runs, so they
cannot lock or overwrite each other. When a run ends, this process alone copies that student's
submission (scores, comments, flags, late penalty) into the course's gradebook with nbgrader's
own API, and moves the autograded notebook into place: one writer, one submission at a time.
"""

from __future__ import annotations

import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

from . import course as kit_course
from .collect import Submission
from .execute import died_before_grading, kernel_death

SCORE_FIELDS = ("auto_score", "manual_score", "extra_credit", "needs_manual_grade")
COMMENT_FIELDS = ("auto_comment", "manual_comment")


@dataclass
class Result:
    student: str
    assignment: str
    score: float | None  # None: nbgrader could not grade it (see problem)
    max_score: float | None
    seconds: float
    problem: str = ""  # why it was not graded
    note: str = ""  # graded, but the instructor should look: why (the kernel died while grading)


def db_url(course: Path) -> str:
    return f"sqlite:///{course / 'gradebook.db'}"


def place(submission: Submission, course: Path) -> None:
    """Put a submission where nbgrader expects it: submitted/<student>/<assignment>/<id>.ipynb
    (one that `nbgrader collect` put there stays, with its timestamp)."""
    folder = course / "submitted" / submission.student / submission.assignment
    if submission.path.resolve() == (folder / f"{submission.assignment}.ipynb").resolve():
        return
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(submission.path, folder / f"{submission.assignment}.ipynb")


def grade_all(submissions: list[Submission], env: dict, jobs: int, course: Path | None = None,
              out=print) -> list[Result]:
    """Autograde every submission (at most `jobs` at a time); print one line per submission."""
    course = course or kit_course.COURSE
    work = course / ".autograde"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    template = work / "gradebook.db"
    shutil.copy2(course / "gradebook.db", template)
    for submission in submissions:
        place(submission, course)
    started, results = time.monotonic(), []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running = [pool.submit(_grade_one, s, course, work, template, env) for s in submissions]
        for future in as_completed(running):
            result, folder = future.result()
            if result.score is not None:
                merge_submission(folder, course, result.assignment, result.student)
            shutil.rmtree(folder, ignore_errors=True)
            results.append(result)
            out(progress_line(result, len(results), len(submissions), time.monotonic() - started))
    shutil.rmtree(work, ignore_errors=True)
    return results


def _grade_one(submission: Submission, course: Path, work: Path, template: Path,
               env: dict) -> tuple[Result, Path]:
    student, aid = submission.student, submission.assignment
    folder = work / f"{student}--{aid}"
    shutil.copytree(course / "source" / aid, folder / "source" / aid)
    shutil.copytree(course / "submitted" / student / aid, folder / "submitted" / student / aid)
    shutil.copy2(template, folder / "gradebook.db")
    started = time.monotonic()
    done = kit_course.nbgrader(["autograde", aid, f"--student={student}", "--force"],
                               course=folder, env=env, check=False)
    seconds = time.monotonic() - started
    try:
        with Gradebook(db_url(folder), kit_course.COURSE_ID) as gradebook:
            graded = gradebook.find_submission(aid, student)
            score, max_score = graded.score, graded.max_score
    except MissingEntry:
        score = max_score = None
    autograded = folder / "autograded" / student / aid
    if done.returncode != 0 or not autograded.is_dir():
        return Result(student, aid, None, None, seconds, _problem(done.stdout + done.stderr)), folder
    note = kernel_death(autograded / f"{aid}.ipynb")
    return Result(student, aid, score, max_score, seconds, note=note), folder


def _problem(log: str) -> str:
    """What went wrong, from nbgrader's log: one sentence for a known cause, else the lines that
    say it."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return died_before_grading()
    lines = [line.strip() for line in log.splitlines() if "[ERROR]" in line or "Error" in line]
    return " / ".join(lines[-3:])[-400:] or log.strip()[-400:] or "nbgrader failed without a message"


def merge_submission(source: Path, course: Path, assignment: str, student: str) -> None:
    """Copy one student's autograded submission from a worker's course folder into the course."""
    target = course / "autograded" / student / assignment
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source / "autograded" / student / assignment), target)
    with Gradebook(db_url(source), kit_course.COURSE_ID) as theirs, \
            Gradebook(db_url(course), kit_course.COURSE_ID) as ours, warnings.catch_warnings():
        # nbgrader's add_submission autoflushes half-built rows; SQLAlchemy warns, nothing is lost
        warnings.simplefilter("ignore", SAWarning)
        graded = theirs.find_submission(assignment, student)
        person = graded.student
        ours.update_or_create_student(student, first_name=person.first_name,
                                      last_name=person.last_name, email=person.email,
                                      lms_user_id=person.lms_user_id)
        ours.update_or_create_submission(assignment, student, timestamp=graded.timestamp,
                                         extension=graded.extension)
        for notebook in graded.notebooks:
            mine = ours.find_submission_notebook(notebook.name, assignment, student)
            mine.flagged = notebook.flagged
            mine.late_submission_penalty = notebook.late_submission_penalty
            for grade in notebook.grades:
                row = ours.find_grade(grade.name, notebook.name, assignment, student)
                for field in SCORE_FIELDS:
                    setattr(row, field, getattr(grade, field))
            for comment in notebook.comments:
                row = ours.find_comment(comment.name, notebook.name, assignment, student)
                for field in COMMENT_FIELDS:
                    setattr(row, field, getattr(comment, field))
        ours.db.commit()


def progress_line(result: Result, done: int, total: int, elapsed: float) -> str:
    width = len(str(total))
    score = ("not graded: " + result.problem if result.score is None
             else f"{result.score:g}/{result.max_score:g}" + (f" · {result.note}" if result.note else ""))
    left = total - done
    eta = f"ETA {_duration(elapsed / done * left)}" if left else f"all done in {_duration(elapsed)}"
    return (f"[{done:>{width}}/{total}] {result.student} · {result.assignment} · {score} · "
            f"{result.seconds:.0f} s · {eta}")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
