"""Reading `llm-kit preflight`'s table back, running the check in process, and the usage-less
stream a faulty server sends: shared by the preflight tests of every tier."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llm_kit.cli import main
from llm_kit.preflight.table import COLUMNS, FAIL, WIDTH

LLM_KIT = str(Path(sys.executable).parent / "llm-kit")
ROWS = ["readiness", "model id", "invoke", "stream", "usage chunk", "batch", "answer cap",
        "structured", "cached tokens", "server metrics", "Stop seen", "batch vs loop", "TTFT",
        "NIM cache"]
BACKEND_VARS = ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY")
# A fault run skips the two timing rows (the full run asserts them): short, and no timing noise
FAULT_RUN = ("--rounds", "0")


def table_rows(output: str) -> dict[str, tuple[str, str]]:
    """{check: (result, the row's text)} read back from the printed table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-" * WIDTH)) + 1
    edges, position = [], 0
    for _, width in COLUMNS:
        edges.append((position, position + width))
        position += width + 2
    rows: dict[str, list[list[str]]] = {}
    name = None
    for line in lines[start:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in edges]
        if cells[0]:
            name = cells[0]
            rows[name] = [[] for _ in COLUMNS]
        for column, cell in zip(rows[name], cells, strict=True):
            if cell:
                column.append(cell)
    return {name: (" ".join(cols[1]), " ".join(" ".join(c) for c in cols if c))
            for name, cols in rows.items()}


def assert_only_red(rows: dict[str, tuple[str, str]], red: str, message: str) -> None:
    assert list(rows) == ROWS
    result, text = rows[red]
    assert result == FAIL, text
    assert message in text, text
    others = {name: result for name, (result, _) in rows.items() if name != red}
    assert FAIL not in others.values(), others


def run_in_process(monkeypatch, capsys, tmp_path, env: dict[str, str], *args: str) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in BACKEND_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["preflight", *args])
    out = capsys.readouterr().out
    print(out)  # shown with a failure
    return code, out


def without_usage(line: str) -> str | None:
    """One SSE line with the usage removed; None drops the line (the usage-only chunk)."""
    if not line.startswith("data: ") or line.strip() == "data: [DONE]":
        return line
    event = json.loads(line.removeprefix("data: "))
    if "usage" not in event:
        return line
    if not event.get("choices"):
        return None
    event.pop("usage")
    return "data: " + json.dumps(event)
