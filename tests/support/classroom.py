"""A real classroom for the tests and the benchmark: `llm-kit classroom` (or `make classroom`) in
a folder of its own under /tmp (learners must be able to enter it; pytest's tmp is root-only),
OS accounts with a unique prefix, all removed afterwards."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.ports import free_port
from llm_kit.classroom.accounts import closed_folder, remove_accounts
from llm_kit.classroom.settings import USER_PREFIX

from support import REPO, require

KIT = Path(sys.executable).parent / "llm-kit"
STAMPS = (".venv/.kit-installed", ".venv/.kit-classroom-installed")  # `make -o`: no reinstall


def require_root() -> None:
    require(os.geteuid() == 0, "the classroom creates OS users: run the tests as root")
    require(shutil.which("useradd") is not None, "useradd is missing (apt-get install passwd)")


OPENINGS = Path("/tmp/kit-classroom-openings.json")  # folders opened, and by how many processes


@contextlib.contextmanager
def learners_can_enter_python():
    """Learners' servers run the venv's Python as their own users: when a folder on its way is
    closed to them (a pyenv Python under /root, 0700), let them through it (o+x: enter, not list)
    while any test process needs it (two test workers may each run a classroom), then close it
    again with the mode it had."""
    closed = closed_folder([Path(sys.executable), Path(sys.base_prefix), REPO / "helpers"])
    if not closed:
        yield
        return
    folder = str(closed[0])
    with _openings() as openings:
        entry = openings.setdefault(folder, {"mode": closed[0].stat().st_mode, "users": 0})
        entry["users"] += 1
        os.chmod(folder, entry["mode"] | 0o001)
    try:
        yield
    finally:
        with _openings() as openings:
            entry = openings[folder]
            entry["users"] -= 1
            if entry["users"] <= 0:
                os.chmod(folder, entry["mode"])
                del openings[folder]


@contextlib.contextmanager
def _openings():
    """The shared record of opened folders, read and written under an exclusive lock."""
    with open(OPENINGS.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        openings = json.loads(OPENINGS.read_text()) if OPENINGS.is_file() else {}
        yield openings
        OPENINGS.write_text(json.dumps(openings))


class Room:
    """A classroom command running in its own session, and what it printed."""

    def __init__(self, env: dict, folder: Path, prefix: str, process: subprocess.Popen, lines: list[str]):
        self.env, self.folder, self.prefix, self.process, self.lines = env, folder, prefix, process, lines
        self.base = f"http://127.0.0.1:{env['KIT_CLASSROOM_PORT']}"
        self.code, self.password = env["KIT_WORKSHOP_CODE"], env["KIT_INSTRUCTOR_PASSWORD"]
        self.instructor = env["KIT_INSTRUCTORS"]

    def name(self, who: str) -> str:
        """A hub name with this room's unique prefix (its OS account: kit-<name>)."""
        return f"{self.prefix}{who}"

    def kit(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
        """An instructor's `llm-kit` command against this room."""
        done = subprocess.run([str(KIT), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, cwd=self.folder)
        assert done.returncode == 0, f"llm-kit {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        return done

    def stop(self, how: signal.Signals = signal.SIGTERM, group: bool = False) -> str:
        if self.process.poll() is None:
            (os.killpg if group else os.kill)(self.process.pid, how)
        rest, _ = self.process.communicate(timeout=120)
        return rest


@contextlib.contextmanager
def classroom(model_url: str | None, *, make: bool = False, slots: int = 2, extra: dict | None = None):
    """Start a classroom (on the model at `model_url`, else its own offline server with `slots`)
    and yield it once it printed its hub log's path; stop it and remove its accounts after."""
    tag = secrets.token_hex(3)
    prefix = f"t{tag}-"
    folder = Path(f"/tmp/kit-classroom-{tag}")
    folder.mkdir(mode=0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY")}
    env.update(KIT_CLASSROOM_ROOT=str(folder / "room"), KIT_CLASSROOM_HOME_ROOT=str(folder / "homes"),
               KIT_COURSE_DIR=str(folder / "course"), KIT_CLASSROOM_PORT=str(free_port()),
               KIT_WORKSHOP_CODE=secrets.token_urlsafe(9), KIT_INSTRUCTOR_PASSWORD=secrets.token_urlsafe(33),
               KIT_INSTRUCTORS=f"{prefix}teach", KIT_SERVER_PORT=str(free_port()),
               KIT_CLASSROOM_SLOTS=str(slots), CI=env.get("CI", ""))
    if model_url:
        env.update(NIM_BASE_URL=model_url, NIM_MODEL="smollm2-135m-instruct")
    env.update(extra or {})
    command = ([shutil.which("make"), "-s", *(f"-o{s}" for s in STAMPS), "classroom"] if make
               else [str(KIT), "classroom"])
    process = subprocess.Popen(command, cwd=REPO if make else folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    room = Room(env, folder, prefix, process, [])
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            room.lines.append(line)
            if line.startswith("Hub log:"):
                break
        assert any(line.startswith("Hub log:") for line in room.lines), "".join(room.lines)
        yield room
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                room.stop()
        remove_accounts(USER_PREFIX + prefix)
        shutil.rmtree(folder, ignore_errors=True)


def scores(output: str) -> dict[str, float]:
    """student -> score, from the autograder's progress lines."""
    return {m["student"]: float(m["score"]) for m in re.finditer(
        r"\] (?P<student>\S+) · \S+ · (?P<score>[\d.]+)/[\d.]+", output)}
