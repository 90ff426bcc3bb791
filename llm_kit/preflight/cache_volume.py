"""On the Docker Compose host: can the NIM's user (uid 1000) write to the NIM's cache volume?

A fresh named volume can come up owned by root; the NIM then fails with `Permission denied`
when it downloads the model. The check writes and removes a file in the volume as uid 1000,
from the NIM image itself (already pulled on that host), without starting the NIM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .table import Check, failed, passed, skipped

NAME = "NIM cache"
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
NIM_SERVICE = "llama"
NIM_UID = 1000
NOT_HERE = "not a compose host"
HINT = "On the GPU host: `make preflight COMPOSE=1`."
PROBE = 'f="$1/.kit-preflight-$$" && touch "$f" && rm "$f"'

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class NimCache:
    volume: str  # the Docker volume's name, as compose creates it
    path: str  # where the NIM sees it
    image: str  # the NIM image the compose file pins


def nim_cache(compose_file: Path = COMPOSE_FILE, env: dict[str, str] | None = None) -> NimCache:
    """The NIM service's cache volume and image, read from docker-compose.yml."""
    import yaml

    environ = os.environ if env is None else env
    compose = yaml.safe_load(compose_file.read_text())
    service = compose["services"][NIM_SERVICE]
    source, path = next((volume.split(":")[0], volume.split(":")[1]) for volume in service["volumes"]
                        if volume.split(":")[0] in (compose.get("volumes") or {}))
    declared = (compose.get("volumes") or {}).get(source) or {}
    project = environ.get("COMPOSE_PROJECT_NAME") or compose.get("name") or compose_file.parent.name
    return NimCache(volume=declared.get("name") or f"{project}_{source}", path=path,
                    image=service["image"])


def chown_command(cache: NimCache) -> str:
    return (f"docker run --rm --user 0 -v {cache.volume}:/cache --entrypoint chown {cache.image} "
            f"-R {NIM_UID}:{NIM_UID} /cache")


def _docker(run: Runner, docker: str, *args: str, timeout_s: float = 60) -> tuple[int, str]:
    try:
        done = run([docker, *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return 124, f"`docker {args[0]}` did not finish within {timeout_s:.0f} s"
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def check_cache_volume(forced: bool = False, run: Runner = subprocess.run,
                       which: Callable[[str], str | None] = shutil.which,
                       compose_file: Path = COMPOSE_FILE) -> Check:
    """The cache row. Without `forced`, a machine without Docker or without the stack's volume
    is not a compose host: the row is skipped (not a failure)."""
    docker = which("docker")
    if docker is None:
        if not forced:
            return skipped(NAME, NOT_HERE, HINT)
        return failed(NAME, "docker: command not found",
                      "Run this on the host that runs `docker compose up` (Docker Engine installed).")
    cache = nim_cache(compose_file)
    code, message = _docker(run, docker, "volume", "inspect", cache.volume, timeout_s=20)
    if code != 0:
        if not forced:
            return skipped(NAME, NOT_HERE, HINT)
        if "daemon" in message.lower():
            return failed(NAME, message, "Start Docker (`sudo systemctl start docker`), then run again.")
        return failed(NAME, f"no volume {cache.volume}",
                      "Start the stack once (`docker compose up`): compose creates the volume.")
    code, message = _docker(run, docker, "run", "--rm", "--pull", "never", "--user",
                            f"{NIM_UID}:{NIM_UID}", "--entrypoint", "sh", "-v",
                            f"{cache.volume}:{cache.path}", cache.image, "-c", PROBE, "probe",
                            cache.path)
    if code == 0:
        return passed(NAME, f"uid {NIM_UID} can write {cache.path} (volume {cache.volume})")
    if "permission denied" in message.lower() or "read-only" in message.lower():
        return failed(NAME, f"uid {NIM_UID} cannot write {cache.path}: {message}",
                      f"Give the volume to uid {NIM_UID}: `{chown_command(cache)}`")
    if "no such image" in message.lower():
        return failed(NAME, f"{cache.image} is not pulled", "`docker compose pull llama` first.")
    return failed(NAME, message or f"docker run exited with {code}", "See the message; then run again.")
