"""`make classroom`: the model server, then JupyterHub (with its proxy and idle culler) on this
host, until Ctrl-C, SIGTERM or SIGHUP stop the hub, every learner's server and kernels, and the
model server the command started."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from helpers.friendly_errors import KitError
from helpers.ports import free_port, port_is_free
from helpers.waiting import poll_until

from ..backend import configured_backend, pick_backend
from ..grading import course
from ..workshop import REPO_ROOT, STOP_SIGNALS, Stop, raise_stop, stop_process_tree
from .accounts import make_private, require_reachable, require_root_and_tools
from .exchange import add_student, prepare
from .settings import MIN_ADMIN_PASSWORD_LENGTH, MIN_CODE_LENGTH, Room, room_from_env, secrets_from_env

DEFAULT_SLOTS = 8  # the offline server's parallel slots when the classroom starts it
CONFIG = "from llm_kit.classroom.hub_config import configure\n\nconfigure(get_config())  # noqa: F821\n"


def run_classroom(port: int | None = None, ip: str | None = None, server_port: int = 8000,
                  slots: int = DEFAULT_SLOTS) -> int:
    """Start the room, print how to sign in, and stop it all on Ctrl-C, SIGTERM or SIGHUP."""
    require_root_and_tools()
    require_reachable([Path(sys.executable), Path(sys.base_prefix), REPO_ROOT / "helpers"])
    room = room_from_env(port=port, ip=ip)
    # nbgrader's gradebook runs alembic, a tool of this venv, and so does the hub's sign-in hook
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    if not port_is_free(room.ip, room.port):
        raise KitError(f"Port {room.port} is taken (a classroom or another server runs there); "
                       f"stop it, or run `make classroom KIT_CLASSROOM_PORT={room.port + 100}`.")
    backend = pick_backend(server_port, configured_backend(), parallel=slots)  # reads .env too
    keys = secrets_from_env()
    if len(keys.workshop_code) < MIN_CODE_LENGTH or len(keys.instructor_password) < MIN_ADMIN_PASSWORD_LENGTH:
        raise KitError(f"KIT_WORKSHOP_CODE needs {MIN_CODE_LENGTH} characters and KIT_INSTRUCTOR_PASSWORD "
                       f"{MIN_ADMIN_PASSWORD_LENGTH} (JupyterHub's minimum); unset them to generate them.")
    private = make_private(REPO_ROOT, course.COURSE)
    previous = {sig: signal.signal(sig, raise_stop) for sig in STOP_SIGNALS}
    server, hub, culler = contextlib.ExitStack(), None, None
    try:
        server.enter_context(backend)  # the shared model: configured, reused, or started here
        prepare(room)
        add_student(None)  # the gradebook, built now rather than at the first sign-in
        culler_token = secrets.token_hex(32)
        hub = _start_hub(room, backend.settings.base_url, backend.settings.model, keys, culler_token)
        culler = _start_culler(room, culler_token)
        _announce(room, backend, keys, private)
        while hub.poll() is None:
            time.sleep(0.5)
        return hub.returncode or 0
    except (KeyboardInterrupt, Stop) as reason:
        print(f"\nStopping the classroom ({reason or 'Ctrl-C'})…", flush=True)
        return 0
    finally:
        for sig in STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        if culler is not None:
            stop_process_tree(culler, grace_s=5)
        if hub is not None:
            stop_process_tree(hub, grace_s=60)
        server.close()  # stops the offline server if it was started here
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_hub(room: Room, base_url: str, model: str, keys, culler_token: str) -> subprocess.Popen:
    state = {**{k: str(v) if not isinstance(v, (int, tuple)) else v for k, v in asdict(room).items()},
             "hub_port": free_port(), "proxy_api_port": free_port(), "base_url": base_url,
             "model": model}
    (room.hub_dir / "classroom.json").write_text(json.dumps(state, indent=1))
    (room.hub_dir / "jupyterhub_config.py").write_text(CONFIG)
    env = dict(os.environ, KIT_CLASSROOM_STATE=str(room.hub_dir / "classroom.json"),
               KIT_WORKSHOP_CODE=keys.workshop_code, KIT_INSTRUCTOR_PASSWORD=keys.instructor_password,
               KIT_CULLER_TOKEN=culler_token, KIT_COURSE_DIR=str(course.COURSE))
    log = room.hub_dir / "jupyterhub.log"
    with log.open("w") as sink:
        hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f",
                                str(room.hub_dir / "jupyterhub_config.py")],
                               cwd=room.hub_dir, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{'127.0.0.1' if room.ip in ('0.0.0.0', '') else room.ip}:{room.port}/hub/api"

    def answers(_waited: float) -> bool | None:
        if hub.poll() is not None:
            raise KitError(f"JupyterHub exited during start-up (code {hub.returncode}); its log: {log}")
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(url, timeout=2).status_code == 200 or None
        return None

    try:
        poll_until(answers, timeout_s=120, interval_s=0.3)
    except TimeoutError:
        stop_process_tree(hub)
        raise KitError(f"JupyterHub did not answer within 120 s; its log: {log}") from None
    except BaseException:
        stop_process_tree(hub)
        raise
    return hub


def _start_culler(room: Room, token: str) -> subprocess.Popen:
    """jupyterhub-idle-culler, a service of the hub: stops a learner's server idle that long."""
    env = dict(os.environ, JUPYTERHUB_API_TOKEN=token, JUPYTERHUB_API_URL=_hub_api(room))
    every = max(10, min(300, room.cull_idle_s // 2))
    with (room.hub_dir / "idle-culler.log").open("w") as sink:
        return subprocess.Popen([sys.executable, "-m", "jupyterhub_idle_culler",
                                 f"--timeout={room.cull_idle_s}", f"--cull-every={every}"],
                                env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _hub_api(room: Room) -> str:
    state = json.loads((room.hub_dir / "classroom.json").read_text())
    return f"http://127.0.0.1:{state['hub_port']}/hub/api"


def _announce(room: Room, backend, keys, private) -> None:
    shown = "127.0.0.1" if room.ip in ("0.0.0.0", "") else room.ip
    print("\n" + "=" * 72)
    print(f"Classroom hub: http://{shown}:{room.port}/  (bound to {room.ip}"
          + ("; reachable from other machines)" if room.ip != "127.0.0.1" else "; this machine only)"))
    print(f"Shared model: {backend.settings.base_url} ({backend.settings.model})")
    for name, value, what in (("KIT_WORKSHOP_CODE", keys.workshop_code, "learners' workshop code"),
                              ("KIT_INSTRUCTOR_PASSWORD", keys.instructor_password,
                               f"instructors' password ({', '.join(room.instructors)})")):
        if name in keys.generated:  # shown once, here; put it in .env to keep it
            print(f"{what}: {value}   (generated; set {name} in .env to keep one)")
        else:
            print(f"{what}: from {name}")
    if private:
        print("Made root-only: " + ", ".join(str(p) for p in private))
    print(f"Exchange: {room.exchange} · homes: {room.home_root}/kit-<name> · course: {course.COURSE}")
    print("Instructor: llm-kit classroom release|collect|grade|feedback <assignment>")
    print(f"Hub log: {room.hub_dir / 'jupyterhub.log'}")
    print("Press Ctrl-C here to stop the hub, every learner's server"
          + (" and the offline model server." if backend.started else "."))
    print("=" * 72, flush=True)
