"""What several test files share: a fake clock, and finding the kit's processes and tools.
(Test files import from here, never from each other.)"""

from __future__ import annotations

import sys
from pathlib import Path

from llm_kit.offline.config import ENGINE_MODULE


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
    """A console script installed next to this test run's Python (llm-kit, jupyter, …)."""
    return str(Path(sys.executable).with_name(name))
