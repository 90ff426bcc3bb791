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
CELL_TIMEOUT_S = int(os.environ.get("KIT_CELL_TIMEOUT_S", "120"))  # per cell, when autograding


def assignments(solutions: Path = SOLUTIONS) -> list[str]:
    """Assignment ids: one per solution notebook, in lesson order."""
    return sorted(p.stem for p in solutions.glob("[0-9]*.ipynb"))


def nbgrader(args: list[str], course: Path = COURSE, env: dict | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command against `course` (explicit folder, same settings everywhere)."""
    course.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "nbgrader", *args,
           f"--CourseDirectory.root={course}",
           f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}",
           "--CourseDirectory.course_id=llm-streaming-batching",
           f"--Execute.timeout={CELL_TIMEOUT_S}", "--Execute.interrupt_on_timeout=True"]
    env = dict(os.environ if env is None else env)
    # nbgrader shells out to tools of its own (alembic): make the venv's bin visible.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    done = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise KitError(f"`nbgrader {' '.join(args)}` failed:\n{done.stdout[-2000:]}"
                       f"{done.stderr[-3000:]}")
    return done


def _sync_sources(course: Path, solutions: Path) -> list[str]:
    ids = assignments(solutions)
    for aid in ids:
        folder = course / "source" / aid
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(solutions / f"{aid}.ipynb", folder / f"{aid}.ipynb")
    return ids


def release(course: Path = COURSE, solutions: Path = SOLUTIONS,
            notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Generate the student copies with nbgrader and write them to `notebooks`."""
    written = []
    notebooks.mkdir(parents=True, exist_ok=True)
    for aid in _sync_sources(course, solutions):
        nbgrader(["generate_assignment", aid, "--force", "--create"], course)
        generated = course / "release" / aid / f"{aid}.ipynb"
        target = notebooks / f"{aid}.ipynb"
        shutil.copy2(generated, target)
        written.append(target)
    return written


def collect_submissions(source: Path, course: Path = COURSE) -> dict[str, list[str]]:
    """Copy SOURCE/<student>/<id>.ipynb (or nbgrader's <student>/<id>/<id>.ipynb) into
    course/submitted; returns {assignment: [students]}."""
    if not source.is_dir():
        raise KitError(f"No submissions folder at {source}: expected {source}/<student>/<id>.ipynb")
    known = set(assignments())
    found: dict[str, list[str]] = {}
    for student in sorted(p for p in source.iterdir() if p.is_dir()):
        for notebook in sorted(student.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in notebook.parts or notebook.stem not in known:
                continue
            target = course / "submitted" / student.name / notebook.stem
            if target.resolve() != notebook.parent.resolve():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(notebook, target / notebook.name)
            found.setdefault(notebook.stem, []).append(student.name)
    if not found:
        raise KitError(f"No notebooks named like the assignments ({', '.join(sorted(known))}) "
                       f"under {source}/<student>/.")
    return found


def grading_env(base_url: str, model: str) -> dict[str, str]:
    env = dict(os.environ, NIM_BASE_URL=base_url, NIM_MODEL=model, KIT_DISPLAY="plain")
    env.pop("NVIDIA_API_KEY", None)  # grading is offline and reproducible
    return env
