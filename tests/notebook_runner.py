"""Execute notebooks headlessly with nbclient, the way autograding does."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Executed:
    notebook: nbformat.NotebookNode
    seconds: float
    error: CellExecutionError | None

    def cells_with_errors(self) -> list[dict]:
        return [c for c in self.notebook.cells if c.cell_type == "code"
                and any(o.output_type == "error" for o in c.get("outputs", []))]

    def text_of(self, cell) -> str:
        """All text a cell showed: stream output, text/plain and text/markdown."""
        parts = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                parts.append(out.data.get("text/markdown", out.data.get("text/plain", "")))
        return "".join(parts)


def execute(path: Path, allow_errors: bool = False, timeout_s: int = 120,
            env: dict | None = None, workdir: Path | None = None) -> Executed:
    """Run a notebook top to bottom in a fresh kernel; returns outputs and wall time."""
    notebook = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                                allow_errors=allow_errors,
                                resources={"metadata": {"path": str(workdir or path.parent)}})
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except CellExecutionError as exc:
            error = exc
        return Executed(notebook, time.perf_counter() - start, error)
    finally:
        os.environ.clear()
        os.environ.update(saved)
