"""The processes a local Ray instance runs, found so a notebook can show they are gone."""

from __future__ import annotations

from collections.abc import Sequence

RAY_MARKERS = ("raylet", "gcs_server", "ray::", "/ray/", "ray.dashboard", "ray._private")


def looks_like_ray(cmdline: Sequence[str], name: str = "") -> bool:
    """True for the processes a local Ray instance runs (GCS, raylet, workers, agents)."""
    text = " ".join(cmdline)
    return name in ("raylet", "gcs_server") or any(marker in text for marker in RAY_MARKERS)


def ray_processes(parent_pid: int | None = None) -> list:
    """Ray's processes among the descendants of `parent_pid` (default: this process)."""
    import psutil

    try:
        children = psutil.Process(parent_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and looks_like_ray(child.cmdline(), child.name()):
                found.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def start_ray(**init_options):
    """`ray.init(**init_options)`, tried a second time after a failed start: on a busy machine
    Ray's own start-up waits (30 s for the raylet, less for its agents) can run out."""
    import ray

    try:
        return ray.init(**init_options)
    except Exception as first:  # Ray raises a bare Exception when a node times out at start
        print(f"Ray did not start ({str(first).splitlines()[0][:120]}); stopping it and trying once more.")
        ray.shutdown()
        return ray.init(**init_options)
