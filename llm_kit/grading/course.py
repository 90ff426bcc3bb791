"""The nbgrader course behind the kit: solutions/ → notebooks/, and the grading folders.

One assignment per notebook (id = file stem). nbgrader needs its own folder layout
(source/<id>/, release/<id>/, submitted/<student>/<id>/...), so it works inside the
git-ignored course/ folder and the kit copies sources in and student copies out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.friendly_errors import KitError

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO_ROOT / "solutions"
NOTEBOOKS = REPO_ROOT / "notebooks"
COURSE = Path(os.environ.get("KIT_COURSE_DIR") or REPO_ROOT / "course")
COURSE_ID = "llm-streaming-batching"
CELL_TIMEOUT_S = int(os.environ.get("KIT_CELL_TIMEOUT_S", "120"))  # per cell, when autograding
# Output may reach nbgrader a while after a cell finished when many submissions are graded at
# once on a small machine; nbclient's 4 s default would then fail the whole notebook.
OUTPUT_TIMEOUT_S = 60
# Autograding caps the offline model's answers lower than the lessons do: every test checks what
# calls did, never how long an answer is, and most of grading is spent generating answers.
GRADING_ANSWER_CAP = 64


def assignments(solutions: Path = SOLUTIONS) -> list[str]:
    """Assignment ids: one per solution notebook, in lesson order."""
    return sorted(p.stem for p in solutions.glob("[0-9]*.ipynb"))


def nbgrader(args: list[str], course: Path = COURSE, env: dict | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command against `course` (explicit folder, same settings everywhere)."""
    course.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env)
    timeout_s = env.get("KIT_CELL_TIMEOUT_S") or CELL_TIMEOUT_S
    cmd = [sys.executable, "-m", "nbgrader", *args,
           f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}",
           f"--CourseDirectory.course_id={COURSE_ID}",
           f"--Execute.timeout={timeout_s}", "--Execute.interrupt_on_timeout=True",
           f"--Execute.iopub_timeout={OUTPUT_TIMEOUT_S}"]
    if args[:1] == ["autograde"]:
        cmd += [f"--Autograde.autograde_preprocessors={step}" for step in autograde_steps()]
    # nbgrader shells out to tools of its own (alembic): make the venv's bin visible.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise KitError(f"`nbgrader {' '.join(args)}` failed:\n{done.stdout[-2000:]}"
                       f"{done.stderr[-3000:]}")
    return done


def autograde_steps() -> list[str]:
    """nbgrader's autograde preprocessors, with the kit's Execute in place of nbgrader's: a
    notebook whose kernel dies is still graded (execute.py)."""
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    steps = Autograde.class_traits()["autograde_preprocessors"].default()
    return ["llm_kit.grading.execute.Execute" if step is Execute
            else f"{step.__module__}.{step.__name__}" for step in steps]


def generate(ids: list[str], course: Path = COURSE, solutions: Path = SOLUTIONS) -> None:
    """Copy the solutions in as nbgrader sources and record their tests in the gradebook."""
    for aid in ids:
        folder = course / "source" / aid
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(solutions / f"{aid}.ipynb", folder / f"{aid}.ipynb")
        nbgrader(["generate_assignment", aid, "--force", "--create"], course)


def release(course: Path = COURSE, solutions: Path = SOLUTIONS,
            notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Generate the student copies with nbgrader and write them to `notebooks`."""
    written = []
    notebooks.mkdir(parents=True, exist_ok=True)
    ids = assignments(solutions)
    generate(ids, course, solutions)
    for aid in ids:
        target = notebooks / f"{aid}.ipynb"
        shutil.copy2(course / "release" / aid / f"{aid}.ipynb", target)
        written.append(target)
    return written


def grading_env(base_url: str, model: str) -> dict[str, str]:
    env = dict(os.environ, NIM_BASE_URL=base_url, NIM_MODEL=model, KIT_DISPLAY="plain",
               KIT_ANSWER_CAP=str(GRADING_ANSWER_CAP))
    env.pop("NVIDIA_API_KEY", None)  # grading runs offline, on the same model for everyone
    return env
