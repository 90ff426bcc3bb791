"""The installed stack is the one that works: nbgrader's lab extension loads in this JupyterLab."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
OLDEST_AT_HAND = Path("/usr/bin/python3")  # Debian 12's own python3 (3.11.2 here)


def test_nbgrader_lab_extension_is_enabled_and_ok():
    done = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], capture_output=True,
                          text=True, timeout=120)
    listing = ANSI.sub("", done.stdout + done.stderr)
    rows = [line.split() for line in listing.splitlines() if "nbgrader" in line]
    assert rows, f"nbgrader's lab extension is not installed:\n{listing}"
    for row in rows:
        assert "enabled" in row and "OK" in row, listing
