"""The instructor commands, end to end: autograde an LMS download (a zip of renamed notebooks,
folders and zips), then feedback and the grades CSV. Nothing is dropped without a line saying so."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat

from support import REPO

KIT = Path(sys.executable).parent / "llm-kit"
AID = "01_setup_and_first_call"
OLD, NEW = (2024, 5, 1, 10, 0, 0), (2024, 5, 2, 10, 0, 0)


def _kit(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([str(KIT), "grade", *args], env=env, capture_output=True, text=True,
                          timeout=900)


def _notebook(returns: str | None) -> bytes:
    """The student copy, with `ask` returning `returns` (None: left unanswered)."""
    notebook = nbformat.read(REPO / "notebooks" / f"{AID}.ipynb", as_version=4)
    if returns is not None:
        answer = next(c for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("grade_id") == "ask")
        answer.source = f"def ask(question):\n    return {returns}\n"
    return nbformat.writes(notebook).encode()


def _zip(entries: dict[str, tuple[bytes, tuple]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, (data, when) in entries.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return buffer.getvalue()


def test_autograde_an_lms_zip_feedback_and_grades(tmp_path, offline_server):
    right, blank = _notebook("llm.invoke(question).content"), _notebook(None)
    message = _notebook("llm.invoke(question)")  # the AIMessage: one call, right answer, not text
    download = tmp_path / "download.zip"
    download.write_bytes(_zip({
        f"doejane_12345_67890_{AID}-1.ipynb": (right, NEW),  # Canvas, a re-submission
        f"John Doe_555_assignsubmission_file_/{AID}.ipynb": (blank, NEW),  # Moodle, did nothing
        f"carol/{AID} (1).ipynb": (right, NEW),  # a second download
        f"carol/{AID}.ipynb": (blank, OLD),  # ... and the older first one
        f"s1234-{AID}-2.ipynb": (right, NEW),  # a student id in front
        "hank_777_888_work.zip": (_zip({f"{AID}.ipynb": (right, NEW)}), NEW),  # a zip in the zip
        f"erin/{AID}.ipynb": (b'{"cells": [', NEW),  # a broken download
        f"ivan/{AID}.ipynb": (message, NEW),
        "frank/notes.txt": (b"see attached", NEW),
    }))
    env = dict(os.environ, KIT_COURSE_DIR=str(tmp_path / "course"))
    done = _kit("autograde", "--submissions", str(download), "--server-port",
                str(offline_server.port), "--jobs", "3", env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, "a submission could not be graded: the command says so\n" + output
    assert f"not taken: download.zip/carol/{AID}.ipynb: carol has a newer file for {AID}" in output
    assert "not taken: download.zip/frank/notes.txt: not a notebook (.ipynb)" in output
    assert f"⚠ not graded: download.zip/erin/{AID}.ipynb: unreadable notebook" in output
    graded = {"doejane_12345": 2, "John-Doe_555": 0, "carol": 2, "s1234": 2, "hank_777": 2, "ivan": 1}
    progress = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == len(graded), output
    for student, score in graded.items():
        assert any(f"] {student} · {AID} · {score}/2 · " in line for line in progress), output
    assert "graded 6 of 6 submissions" in output

    assert _kit("feedback", env=env).returncode == 0
    grades = tmp_path / "grades.csv"
    assert _kit("export", "--to", str(grades), env=env).returncode == 0
    with grades.open() as handle:
        rows = {r["student_id"]: r for r in csv.DictReader(handle) if r["assignment"] == AID}
    assert {student: float(row["score"]) for student, row in rows.items()} == graded
    assert all(float(row["max_score"]) == 2 for row in rows.values())
    feedback = tmp_path / "course" / "feedback"
    for student in graded:
        assert (feedback / student / AID / f"{AID}.html").is_file()
    assert "NotImplementedError" in (feedback / "John-Doe_555" / AID / f"{AID}.html").read_text()
    assert offline_server.running  # the shared server was reused, not restarted
