"""OS accounts for learners (one each, home 0700) and the instructor's files made root-only."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from helpers.friendly_errors import KitError

from .settings import ACCOUNT_COMMENT, USER_PREFIX, account

# What no learner may read: the worked answers and hidden tests, the grading folder, the secrets
# and git's history of them all. Made root-only (folders 0700, files 0600) as the classroom starts.
PRIVATE_FOLDERS = ("solutions", "tests", "course", ".git")
PRIVATE_FILES = (".env",)


def require_root_and_tools() -> None:
    """One line saying what to do when the classroom cannot create accounts here."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise KitError("The classroom runs each learner as an OS user of their own, so it needs root: "
                       "run `sudo make classroom` (or `sudo .venv/bin/llm-kit classroom`).")
    for tool in ("useradd", "userdel"):
        if shutil.which(tool) is None:
            raise KitError(f"`{tool}` is missing; install it (Debian/Ubuntu: `apt-get install passwd`).")


def closed_folder(paths: list[Path]) -> tuple[Path, Path] | None:
    """(a folder other users cannot enter, the path behind it) for the first of `paths` (the
    Python, the venv, the kit) that a learner's account could not reach, else None."""
    for path in paths:
        real = Path(os.path.realpath(path))
        for folder in reversed(real.parents):
            if not folder.stat().st_mode & 0o001:
                return folder, real
    return None


def require_reachable(paths: list[Path]) -> None:
    closed = closed_folder(paths)
    if closed:
        folder, path = closed
        raise KitError(f"Learners' servers run as their own OS users, who cannot enter {folder} (on the "
                       f"way to {path}): allow them through it (`chmod o+x {folder}`: enter, not list) "
                       "or make .venv from a Python outside it (`make classroom PYTHON=/usr/bin/python3` "
                       "after `rm -rf .venv`).")


def ensure_account(name: str, home_root: Path) -> pwd.struct_passwd:
    """The OS account behind hub user `name`, created on first sign-in (home 0700, no login
    password, no login shell). An account of that name the classroom did not create is refused."""
    user = account(name)
    try:
        existing = pwd.getpwnam(user)
    except KeyError:
        existing = None
    if existing is not None:
        if existing.pw_gecos != ACCOUNT_COMMENT:
            raise KitError(f"OS user {user} exists and is not a classroom learner; not using it.")
        return existing
    home_root.mkdir(parents=True, exist_ok=True)
    home = home_root / user
    done = subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--comment",
                           ACCOUNT_COMMENT, "--shell", "/bin/bash", "--user-group", user],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise KitError(f"useradd {user} failed: {done.stderr.strip()}")
    os.chmod(home, 0o700)
    return pwd.getpwnam(user)


def learner_accounts(prefix: str = USER_PREFIX) -> list[pwd.struct_passwd]:
    """The classroom's OS accounts whose name starts with `prefix`."""
    return [u for u in pwd.getpwall() if u.pw_name.startswith(prefix) and u.pw_gecos == ACCOUNT_COMMENT]


def remove_accounts(prefix: str) -> list[str]:
    """Delete the classroom's accounts named `prefix…` and their homes (a test's own, or a room's
    learners after the course)."""
    removed = []
    for user in learner_accounts(prefix):
        subprocess.run(["userdel", "--remove", "--force", user.pw_name], capture_output=True)
        shutil.rmtree(user.pw_dir, ignore_errors=True)
        removed.append(user.pw_name)
    return removed


def make_private(repo: Path, course: Path) -> list[Path]:
    """Make the instructor's files root-only (folders 0700, files 0600); returns what changed."""
    changed = []
    course.mkdir(parents=True, exist_ok=True)
    for path in {*(repo / name for name in PRIVATE_FOLDERS), course}:
        if path.is_dir() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
            changed.append(path)
    for path in (repo / name for name in PRIVATE_FILES):
        if path.is_file() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            changed.append(path)
    return changed
