"""Execute notebooks headlessly with nbclient, the way autograding does."""

from __future__ import annotations

import os
import re
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

    def tagged_text(self, tag: str) -> str:
        """What the one cell tagged `tag` showed."""
        cells = [c for c in self.notebook.cells if tag in c.metadata.get("tags", [])]
        assert len(cells) == 1, f"expected one cell tagged {tag!r}"
        return self.text_of(cells[0])


def number(pattern: str, text: str) -> float:
    """The number the regex's first group finds in a cell's output (asserts it is there)."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


def sweep_table(text: str) -> dict[int, tuple[float, int | None]]:
    """{max_concurrency: (median wall time, most requests the server ran at once)} from a
    printed concurrency sweep."""
    rows = re.findall(r"^\s+(\d+) \| (\d+\.\d+) \| \d+\.\d+x(?: \| (\d+))?$", text, re.M)
    return {int(v): (float(t), int(p) if p else None) for v, t, p in rows}


def assert_plateau_at_the_slots(text: str) -> None:
    """A sweep's claim, from its own measurement: the server never ran more requests at once than
    it has slots (the rest queued), so doubling past the slots gains far less than the halving
    twice the slots would give, while going from 1 to the slots pays clearly."""
    slots = int(number(r"server slots: (\d+)", text))
    table = sweep_table(text)
    assert slots in table and 1 in table and max(table) > slots, text
    assert {v: p for v, (_, p) in table.items()} == {v: min(v, slots) for v in table}, (
        f"the server ran min(max_concurrency, slots) requests at once:\n{text}")
    times = {v: t for v, (t, _) in table.items()}
    beyond = min(t for v, t in times.items() if v > slots)
    assert beyond >= 0.6 * times[slots], f"past {slots} slots the time still fell steeply:\n{text}"
    assert times[1] >= 1.2 * times[slots], f"{slots} in flight was not clearly faster than 1:\n{text}"


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
