"""What several test files share: the repo root, prerequisites, a fake clock, and finding the
kit's processes and tools. (Test files import shared code from support modules, never from each
other or from conftest.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llm_kit.offline.config import ENGINE_MODULE

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a prerequisite is missing, but fail under CI=true (nothing skips in CI)."""
    import pytest

    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


class FakeClock:
    """A clock that advances only when told to (`clock.now += 0.5`), or by `step` per read."""

    def __init__(self, now: float = 100.0, step: float = 0.0):
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def offline_server_pids(port: int) -> list[int]:
    """Live (non-zombie) offline server processes started with `--port <port>`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and ENGINE_MODULE.encode() in argv and b"--port" in argv:
            if argv[argv.index(b"--port") + 1:][:1] == [str(port).encode()]:
                found.append(int(entry.name))
    return found


def venv_tool(name: str) -> str:
    """A console script of the interpreter running the tests (its venv), else from PATH."""
    import shutil

    import pytest

    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make setup-dev` (it comes with the [dev] extras).")
    return found


def wait_until(condition, timeout_s: float = 120.0, what: str = "the condition", interval_s: float = 0.02):
    """Poll `condition()` until it returns something truthy (returned); fail after `timeout_s`."""
    import pytest

    from helpers.waiting import poll_until

    try:
        return poll_until(lambda _: condition() or None, timeout_s, interval_s)
    except TimeoutError:
        pytest.fail(f"{what} not reached within {timeout_s:.0f} s")


def assert_none_left(scan, what: str = "processes left behind", timeout_s: float = 20.0,
                     settle_s: float = 1.0) -> None:
    """Wait until `scan()` finds nothing and still finds nothing `settle_s` later (a process in the
    middle of exec shows no command line or environment for a moment); fail after `timeout_s`
    with what the last scan found."""
    import pytest

    from helpers.waiting import poll_until

    seen = {"left": None, "empty_since": None}

    def settled(waited: float):
        left = scan()
        if left:
            seen.update(left=left, empty_since=None)
            return None
        if seen["empty_since"] is None:
            seen["empty_since"] = waited
        return True if waited - seen["empty_since"] >= settle_s else None

    try:
        poll_until(settled, timeout_s + settle_s, 0.2)
    except TimeoutError:
        pytest.fail(f"{what} after {timeout_s:.0f} s: {seen['left']}")
