"""Start, stop and inspect the offline llama-server (127.0.0.1, one process per port)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..friendly_errors import KitError
from ..settings import OFFLINE_MODEL_ID
from .build import ensure_llama_server
from .model import find_model
from .paths import log_file, pid_file

DEFAULT_PORT = 8000
DEFAULT_PARALLEL = 6
CONTEXT_PER_SLOT = 2048
MAX_TOKENS = 640  # default cap per answer when a request sets none
# A tiny model at temperature 0 tends to repeat itself until the cap; a mild penalty ends
# its answers naturally. (Sampling setting of the offline server only; a NIM is unaffected.)
REPEAT_PENALTY = 1.1


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


def _is_llama_server(pid: int) -> bool:
    try:
        return b"llama-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)


def _read_record(port: int) -> dict | None:
    path = pid_file(port)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if _alive(record["pid"]) and _is_llama_server(record["pid"]):
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


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (connections lingering in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def server_command(binary: Path, model: Path, host: str, port: int, parallel: int) -> list[str]:
    return [str(binary), "--model", str(model), "--alias", OFFLINE_MODEL_ID,
            "--host", host, "--port", str(port),
            "--parallel", str(parallel), "--ctx-size", str(parallel * CONTEXT_PER_SLOT),
            "--n-predict", str(MAX_TOKENS), "--repeat-penalty", str(REPEAT_PENALTY),
            "--cont-batching", "--no-webui"]


def server_env() -> dict[str, str]:
    """The environment for llama-server. Its OpenMP threads must sleep when idle: spinning
    threads on a small, shared CPU slow every other process down, and the server with them."""
    return dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def _warm_up(host: str, port: int) -> None:
    """One tiny request so the first learner-visible call is not the slow one."""
    httpx.post(f"http://{host}:{port}/v1/chat/completions", timeout=60, json={
        "model": OFFLINE_MODEL_ID, "max_tokens": 4,
        "messages": [{"role": "user", "content": "Say hi."}]}).raise_for_status()


def start_server(port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                 parallel: int = DEFAULT_PARALLEL, ready_timeout_s: float = 120.0,
                 quiet: bool = False) -> ServerStatus:
    """Start llama-server in the background, wait until it answers, warm it up."""
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
    binary = ensure_llama_server(quiet=quiet)
    model = find_model()
    log = log_file(port)
    cmd = server_command(binary, model, host, port, parallel)
    with log.open("w") as sink:
        process = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=server_env(),
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    record = {"pid": process.pid, "host": host, "port": port, "log": str(log),
              "started": time.time(), "command": cmd}
    pid_file(port).write_text(json.dumps(record))
    deadline = time.monotonic() + ready_timeout_s
    while not _healthy(host, port):
        if process.poll() is not None:
            pid_file(port).unlink(missing_ok=True)
            raise KitError(f"llama-server exited during start-up (code {process.returncode}). "
                           f"Last lines of {log}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop_server(port, quiet=True)
            raise KitError(f"llama-server did not become ready within {ready_timeout_s:.0f} s; "
                           f"see {log}.")
        time.sleep(0.2)
    _warm_up(host, port)
    status = server_status(port)
    if not quiet:
        print(f"✅ Offline model server ready: {status.base_url} (model {OFFLINE_MODEL_ID}, "
              f"{parallel} parallel slots)\n   log: {log}")
    return status


def stop_server(port: int = DEFAULT_PORT, timeout_s: float = 10.0, quiet: bool = False) -> bool:
    """Stop the server on `port`; True if one was running. Leaves no process behind."""
    record = _read_record(port)
    if record is None:
        if not quiet:
            print(f"No offline server is running on port {port}.")
        return False
    pid = record["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)
    pid_file(port).unlink(missing_ok=True)
    if not quiet:
        print(f"Stopped the offline server on port {port} (pid {pid}).")
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def exec_foreground(port: int = DEFAULT_PORT, host: str = "127.0.0.1",
                    parallel: int = DEFAULT_PARALLEL) -> None:
    """Replace this process with llama-server (for containers: signals reach it directly)."""
    binary = ensure_llama_server(quiet=True)
    cmd = server_command(binary, find_model(), host, port, parallel)
    print(f"Serving {OFFLINE_MODEL_ID} on http://{host}:{port}/v1", flush=True)
    os.execve(cmd[0], cmd, server_env())


@contextlib.contextmanager
def model_endpoint(env: dict | None = None):
    """Yield (base_url, model): NIM_BASE_URL/NIM_MODEL when set, else a fresh offline server
    on a free port that is stopped afterwards (for benchmarks and scripts)."""
    environ = os.environ if env is None else env
    if environ.get("NIM_BASE_URL"):
        yield environ["NIM_BASE_URL"].rstrip("/"), environ.get("NIM_MODEL", OFFLINE_MODEL_ID)
        return
    port = free_port()
    status = start_server(port=port, quiet=True)
    try:
        yield status.base_url, OFFLINE_MODEL_ID
    finally:
        stop_server(port, quiet=True)
