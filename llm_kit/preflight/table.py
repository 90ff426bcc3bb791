"""One pre-flight check's outcome, and the table of all of them (readable at 100 columns)."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass

PASS, FAIL, WARN, SKIP = "pass", "FAIL", "warn", "skip"
WIDTH = 100
# (heading, width): 14 + 6 + 42 + 32, plus two spaces between columns = 100
COLUMNS = (("check", 14), ("result", 6), ("measured", 42), ("what to do if it failed", 32))
RED, YELLOW, RESET = "\033[31m", "\033[33m", "\033[0m"


@dataclass(frozen=True)
class Check:
    """One row: what was checked, pass/FAIL/warn/skip, the figure measured, and the fix."""

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


def warned(name: str, measured: str, fix: str) -> Check:
    """Worth knowing before the workshop, but the lessons still hold: never a failure."""
    return Check(name, WARN, measured, fix)


def skipped(name: str, reason: str, hint: str = "") -> Check:
    """Not applicable here: shown, never counted as a failure."""
    return Check(name, SKIP, f"skipped: {reason}", hint)


def error_text(exc: BaseException, limit: int = 110) -> str:
    """An exception's type and first line, cut to `limit` characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_failed(name: str, exc: BaseException, base_url: str, model: str) -> Check:
    """A row whose call raised: the error, and the learner-facing advice for it."""
    from helpers.friendly_errors import explain

    return failed(name, error_text(exc), explain(exc, base_url, model))


def _cells(check: Check) -> list[list[str]]:
    values = (check.name, check.result, check.measured, check.fix)
    return [textwrap.wrap(value, width, break_long_words=True, break_on_hyphens=False) or [""]
            for value, (_, width) in zip(values, COLUMNS, strict=True)]


def _line(cells: list[str]) -> str:
    return "  ".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)).rstrip()


def use_color(stream=None) -> bool:
    """Coloured rows only on a terminal, and never when NO_COLOR is set."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def render(checks: list[Check], color: bool = False) -> str:
    """The table: a heading, a rule, then each check (long cells wrap inside their column)."""
    lines = [_line([heading for heading, _ in COLUMNS]), "-" * WIDTH]
    for check in checks:
        cells = _cells(check)
        for i in range(max(len(column) for column in cells)):
            line = _line([column[i] if i < len(column) else "" for column in cells])
            colour = {FAIL: RED, WARN: YELLOW}.get(check.result) if color else None
            lines.append(f"{colour}{line}{RESET}" if colour else line)
    return "\n".join(lines)


def summary(checks: list[Check], seconds: float) -> str:
    failures = [check.name for check in checks if check.failed]
    warnings = [check.name for check in checks if check.result == WARN]
    skips = sum(check.result == SKIP for check in checks)
    notes = (f", {len(warnings)} with a warning ({', '.join(warnings)})" if warnings else "") + (
        f", {skips} skipped" if skips else "")
    if failures:
        return (f"FAILED: {len(failures)} of {len(checks) - skips} checks ({', '.join(failures)})"
                f"{notes}; {seconds:.1f} s. Fix those rows before the workshop.")
    return f"All {len(checks) - skips} checks passed{notes}; {seconds:.1f} s."
