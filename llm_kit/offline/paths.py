"""Where the offline backend keeps its build, logs and process records."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """KIT_CACHE_DIR, else ~/.cache/llm-streaming-kit (kept across runs and clones)."""
    root = os.environ.get("KIT_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llm-streaming-kit"


def run_dir() -> Path:
    path = cache_dir() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file(port: int) -> Path:
    return run_dir() / f"offline-server-{port}.json"


def log_file(port: int) -> Path:
    return run_dir() / f"offline-server-{port}.log"
