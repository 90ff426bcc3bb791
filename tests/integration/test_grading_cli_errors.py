"""The instructor commands refuse what they cannot grade in one line, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KIT = Path(sys.executable).parent / "llm-kit"


def test_a_missing_submissions_folder_reads_as_one_line(tmp_path):
    env = dict(os.environ, KIT_COURSE_DIR=str(tmp_path / "course"))
    done = subprocess.run([str(KIT), "grade", "autograde", "--submissions", str(tmp_path / "nowhere")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "No submissions folder or zip at" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
