"""One pre-flight check's outcome, and the table of all of them (readable at 100 columns)."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass

PASS, FAIL, SKIP = "pass", "FAIL", "skip"
WIDTH = 100
# (heading, width): 14 + 6 + 42 + 32, plus two spaces between columns = 100
COLUMNS = (("check", 14), ("result", 6), ("measured", 42), ("what to do if it failed", 32))
RED, RESET = "\033[31m", "\033[0m"


@dataclass(frozen=True)
class Check:
    """One row: what was checked, pass/FAIL/skip, the figure measured, and the fix."""

    name: str
    result: str
    measured: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.result == FAIL


def passed(name: str, measured: str) -> Check:
    return Check(name, PASS, measured)


def failed(name: str, measured: str, fix: str) -> Check:
    return Check(name, FAIL, measured, fix)


def skipped(name: str, reason: str, hint: str = "") -> Check:
    """Not applicable here: shown, never counted as a failure."""
    return Check(name, SKIP, f"skipped: {reason}", hint)


def _cells(check: Check) -> list[list[str]]:
    values = (check.name, check.result, check.measured, check.fix)
    return [textwrap.wrap(value, width, break_long_words=True, break_on_hyphens=False) or [""]
            for value, (_, width) in zip(values, COLUMNS, strict=True)]


def _line(cells: list[str]) -> str:
    return "  ".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)).rstrip()


def use_color(stream=None) -> bool:
    """Red rows only on a terminal, and never when NO_COLOR is set."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def render(checks: list[Check], color: bool = False) -> str:
    """The table: a heading, a rule, then each check (long cells wrap inside their column)."""
    lines = [_line([heading for heading, _ in COLUMNS]), "-" * WIDTH]
    for check in checks:
        cells = _cells(check)
        for i in range(max(len(column) for column in cells)):
            line = _line([column[i] if i < len(column) else "" for column in cells])
            lines.append(f"{RED}{line}{RESET}" if color and check.failed else line)
    return "\n".join(lines)


def summary(checks: list[Check], seconds: float) -> str:
    failures = [check.name for check in checks if check.failed]
    skips = sum(check.result == SKIP for check in checks)
    skip_note = f", {skips} skipped" if skips else ""
    if failures:
        return (f"FAILED: {len(failures)} of {len(checks) - skips} checks ({', '.join(failures)})"
                f"{skip_note}; {seconds:.1f} s. Fix those rows before the workshop.")
    return f"All {len(checks) - skips} checks passed{skip_note}; {seconds:.1f} s."
