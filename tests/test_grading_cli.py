"""The instructor commands, end to end: autograde a folder of submissions, feedback, grades CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from notebook_runner import REPO

KIT = Path(sys.executable).parent / "llm-kit"
AID = "01_setup_and_first_call"


def _kit(*args, env):
    done = subprocess.run([str(KIT), "grade", *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_autograde_feedback_and_grades_from_the_cli(tmp_path, offline_server):
    submissions = tmp_path / "submissions"
    student_copy = nbformat.read(REPO / "notebooks" / f"{AID}.ipynb", as_version=4)
    (submissions / "bob").mkdir(parents=True)
    nbformat.write(student_copy, submissions / "bob" / f"{AID}.ipynb")  # did nothing
    answer = next(c for c in student_copy.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == "ask")
    answer.source = "def ask(question):\n    return llm.invoke(question).content\n"
    (submissions / "ada").mkdir()
    nbformat.write(student_copy, submissions / "ada" / f"{AID}.ipynb")

    env = dict(os.environ, KIT_COURSE_DIR=str(tmp_path / "course"))
    port = str(offline_server.port)
    output = _kit("autograde", "--submissions", str(submissions), "--server-port", port, env=env)
    assert "autograding 01_setup_and_first_call: ada, bob" in output
    _kit("feedback", env=env)
    grades = tmp_path / "grades.csv"
    _kit("export", "--to", str(grades), env=env)

    with grades.open() as handle:
        rows = {r["student_id"]: r for r in csv.DictReader(handle) if r["assignment"] == AID}
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]) == 2
    assert float(rows["bob"]["score"]) == 0
    for student in ("ada", "bob"):
        feedback = tmp_path / "course" / "feedback" / student / AID / f"{AID}.html"
        assert feedback.is_file()
    assert "NotImplementedError" in (tmp_path / "course" / "feedback" / "bob" / AID /
                                     f"{AID}.html").read_text()
    assert offline_server.running  # the shared server was reused, not restarted
