"""Start, stop and inspect the offline model server (127.0.0.1, one process per port)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from helpers.friendly_errors import KitError
from helpers.ports import free_port, port_is_free
from helpers.settings import OFFLINE_MODEL_ID, ConnectionSettings
from helpers.waiting import poll_until

from .config import DEFAULT_PARALLEL, DEFAULT_PORT, ENGINE_MODULE
from .cpu import NO_AVX2, crashed_on_cpu, require_supported_cpu
from .model import verified_model
from .paths import log_file, pid_file


@dataclass
class ServerStatus:
    running: bool
    port: int
    pid: int | None = None
    host: str = "127.0.0.1"
    healthy: bool = False
    log: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def describe(self) -> str:
        if not self.running:
            return (f"offline server: not running on port {self.port} "
                    "(start it with `llm-kit server start` or `make server`)")
        health = "ready" if self.healthy else "not ready"
        return (f"offline server: running (pid {self.pid}), {health}\n  base_url = {self.base_url}"
                f"\n  model    = {OFFLINE_MODEL_ID}\n  log      = {self.log}")


def _ours(pid: int) -> psutil.Process | None:
    """The live engine process with this pid, or None (gone, a zombie, or another program)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process if ENGINE_MODULE in " ".join(process.cmdline()) else None
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return psutil.Process(pid)


def _read_record(port: int) -> dict | None:
    path = pid_file(port)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if _ours(record["pid"]):
        return record
    path.unlink(missing_ok=True)  # stale record from a crashed or killed server
    return None


def _healthy(host: str, port: int) -> bool:
    try:
        return httpx.get(f"http://{host}:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def server_status(port: int = DEFAULT_PORT) -> ServerStatus:
    record = _read_record(port)
    if record is None:
        return ServerStatus(running=False, port=port)
    return ServerStatus(running=True, port=port, pid=record["pid"], host=record["host"],
                        healthy=_healthy(record["host"], port), log=Path(record["log"]))


def server_command(model: Path, host: str, port: int, parallel: int) -> list[str]:
    return [sys.executable, "-m", ENGINE_MODULE, "--model", str(model), "--host", host,
            "--port", str(port), "--parallel", str(parallel)]


def server_env() -> dict[str, str]:
    """The environment for the server. Its OpenMP threads must sleep when idle: spinning
    threads on a small, shared CPU slow every other process down, and the server with them."""
    return dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def warm_up(host: str, port: int, parallel: int) -> None:
    """One short request per slot, all at once, so every slot and the batched decode path are
    warm before the first learner-visible call (a cold first batch is ~2.5x slower)."""
    def ask(i: int) -> None:
        httpx.post(f"http://{host}:{port}/v1/chat/completions", timeout=120, json={
            "model": OFFLINE_MODEL_ID, "max_tokens": 16, "temperature": 0,
            "messages": [{"role": "user", "content": f"Count from {i} to {i + 20}."}],
        }).raise_for_status()

    for _ in range(2):  # the second round runs on warm slots and settles the timings
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(ask, range(parallel)))


def start_server(port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                 parallel: int = DEFAULT_PARALLEL, ready_timeout_s: float = 120.0,
                 quiet: bool = False) -> ServerStatus:
    """Start the server in the background, wait until it answers, warm up every slot."""
    if parallel < 1:
        raise KitError("--parallel must be at least 1.")
    existing = _read_record(port)
    if existing:
        raise KitError(f"The offline server is already running on port {port} (pid "
                       f"{existing['pid']}). Use it as is, or stop it first with "
                       f"`llm-kit server stop --port {port}`.")
    if not port_is_free(host, port):
        raise KitError(f"Port {port} on {host} is already in use by another program. Start the "
                       f"server on another port (`llm-kit server start --port {port + 1}`, then "
                       f"set NIM_BASE_URL=http://{host}:{port + 1}/v1) or stop that program.")
    require_supported_cpu()
    model = verified_model()
    log = log_file(port)
    cmd = server_command(model, host, port, parallel)
    with log.open("w") as sink:
        process = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=server_env(),
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    record = {"pid": process.pid, "host": host, "port": port, "log": str(log),
              "started": time.time(), "command": cmd}
    pid_file(port).write_text(json.dumps(record))
    def healthy(_waited: float) -> bool | None:
        if _healthy(host, port):
            return True
        if process.poll() is not None:
            pid_file(port).unlink(missing_ok=True)
            if crashed_on_cpu(process.returncode):
                raise KitError(NO_AVX2)
            raise KitError(f"The offline server exited during start-up (code "
                           f"{process.returncode}). Last lines of {log}:\n{_tail(log)}")
        return None

    try:
        try:
            poll_until(healthy, timeout_s=ready_timeout_s)
        except TimeoutError:
            raise KitError(f"The offline server did not become ready within "
                           f"{ready_timeout_s:.0f} s; see {log}.") from None
        warm_up(host, port, parallel)
    except BaseException:  # Ctrl-C or a failure mid-start leaves nothing running
        stop_server(port, quiet=True)
        raise
    status = server_status(port)
    if not quiet:
        print(f"✅ Offline model server ready: {status.base_url} (model {OFFLINE_MODEL_ID}, "
              f"{parallel} parallel slots, warmed up)\n   log: {log}")
    return status


def stop_server(port: int = DEFAULT_PORT, timeout_s: float = 10.0, quiet: bool = False) -> bool:
    """Stop the server on `port`; True if one was running. Leaves no process behind."""
    record = _read_record(port)
    if record is None:
        if not quiet:
            print(f"No offline server is running on port {port}.")
        return False
    process = _ours(record["pid"])
    if process is not None:
        family = [process, *process.children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.terminate()
        _, alive = psutil.wait_procs(family, timeout=timeout_s)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(alive, timeout=5)
    pid_file(port).unlink(missing_ok=True)
    if not quiet:
        print(f"Stopped the offline server on port {port} (pid {record['pid']}).")
    return True


def exec_foreground(port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                    parallel: int = DEFAULT_PARALLEL) -> None:
    """Replace this process with the server (for containers: signals reach it directly)."""
    require_supported_cpu()
    cmd = server_command(verified_model(), host, port, parallel)
    print(f"Serving {OFFLINE_MODEL_ID} on http://{host}:{port}/v1 (llama.cpp server, CPU)",
          flush=True)
    os.execve(cmd[0], cmd, server_env())


@contextlib.contextmanager
def model_endpoint(env: dict | None = None):
    """Yield (base_url, model): NIM_BASE_URL/NIM_MODEL when set and answering, else a fresh
    offline server on a free port that is stopped afterwards (for benchmarks and scripts).
    Which one it is goes to stderr."""
    from ..backend import pick_backend

    environ = os.environ if env is None else env
    configured = None
    if environ.get("NIM_BASE_URL"):
        configured = ConnectionSettings(base_url=environ["NIM_BASE_URL"].rstrip("/"),
                                        model=environ.get("NIM_MODEL", OFFLINE_MODEL_ID))
    with pick_backend(free_port(), configured,
                      say=lambda message: print(message, file=sys.stderr)) as backend:
        yield backend.settings.base_url, backend.settings.model
