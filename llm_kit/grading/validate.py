"""A student's self-check: nbgrader validate, with an exit code that means something."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.friendly_errors import KitError

SUCCESS = "Success! Your notebook passes all the tests."


def validate_notebook(notebook: Path, env: dict | None = None) -> int:
    """Run `nbgrader validate` and return 0 only when every test cell passes.

    (`nbgrader validate` itself exits 0 even when tests fail.)
    """
    if not notebook.is_file():
        raise KitError(f"No notebook at {notebook}.")
    done = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(notebook)],
                          capture_output=True, text=True, env=env)
    output = done.stdout + done.stderr
    print(output.strip())
    if SUCCESS in output:
        return 0
    print(f"\n✗ {notebook.name}: not all tests pass yet (see above).")
    return 1
