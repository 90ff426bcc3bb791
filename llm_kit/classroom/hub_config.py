"""The hub's configuration: `configure(c)` is called by the jupyterhub_config.py that `llm-kit
classroom` writes, with the room's settings in a JSON file (KIT_CLASSROOM_STATE) and the two
secrets in the hub's environment only (never in a file, never in a learner's environment)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid

from ..grading import course
from ..workshop import REPO_ROOT
from .accounts import ensure_account
from .exchange import add_student
from .settings import (
    LEARNER_DISABLED_SERVER_EXTENSIONS,
    SHARED_PASSWORD_AUTHENTICATOR,
    USERNAME_PATTERN,
    Room,
    account,
    learner_environment,
)

BIN = Path(sys.executable).parent
NO_NETWORK_CHECKS = ["--LabApp.news_url=None",
                     "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]


class KitSpawner(LocalProcessSpawner):
    """A learner's server runs as their own OS account (kit-<name>, created on first sign-in) in
    its home; an instructor's runs as root at the repository root with all of nbgrader."""

    def system_user(self) -> str:
        return "root" if self.user.admin else account(self.user.name)

    def make_preexec_fn(self, name):
        return set_user_setuid(self.system_user())

    def user_env(self, env):
        entry = pwd.getpwnam(self.system_user())
        env.update(USER=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell or "/bin/bash")
        return env


def configure(c, state_file: str | None = None) -> None:
    """Fill JupyterHub's config `c` from the room's state file and the hub's environment."""
    state = json.loads(Path(state_file or os.environ["KIT_CLASSROOM_STATE"]).read_text())
    room = Room(root=Path(state["root"]), home_root=Path(state["home_root"]),
                exchange=Path(state["exchange"]), port=state["port"], ip=state["ip"],
                cull_idle_s=state["cull_idle_s"], instructors=tuple(state["instructors"]))
    c.JupyterHub.ip, c.JupyterHub.port = room.ip, room.port
    c.JupyterHub.hub_ip, c.JupyterHub.hub_port = "127.0.0.1", state["hub_port"]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{state['proxy_api_port']}"
    c.ConfigurableHTTPProxy.command = [str(BIN / "configurable-http-proxy")]
    c.JupyterHub.db_url = f"sqlite:///{room.hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(room.hub_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(room.hub_dir / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True  # the hub stops every learner's server when it stops
    c.JupyterHub.cleanup_proxy = True
    c.JupyterHub.authenticator_class = SHARED_PASSWORD_AUTHENTICATOR
    c.SharedPasswordAuthenticator.user_password = os.environ["KIT_WORKSHOP_CODE"]
    c.SharedPasswordAuthenticator.admin_password = os.environ["KIT_INSTRUCTOR_PASSWORD"]
    c.Authenticator.admin_users = set(room.instructors)
    c.Authenticator.allow_all = True
    c.Authenticator.username_pattern = USERNAME_PATTERN
    c.JupyterHub.spawner_class = KitSpawner
    c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = c.Spawner.http_timeout = 120
    c.Spawner.environment = {**learner_environment(state["base_url"], state["model"]),
                             "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin"}
    c.Spawner.pre_spawn_hook = _pre_spawn(room)
    # the idle culler runs beside the hub (run.py starts and stops it), with this token
    c.JupyterHub.services = [{"name": "idle-culler", "api_token": os.environ["KIT_CULLER_TOKEN"]}]
    c.JupyterHub.load_roles = [{"name": "idle-culler", "services": ["idle-culler"], "scopes": [
        "list:users", "read:users:activity", "read:servers", "delete:servers"]}]


def _pre_spawn(room: Room):
    async def hook(spawner) -> None:  # useradd and the gradebook run in a thread: the hub stays live
        name = spawner.user.name
        if spawner.user.admin:
            spawner.notebook_dir = str(REPO_ROOT)
            spawner.args = ["--allow-root", *NO_NETWORK_CHECKS]
            spawner.environment = {**spawner.environment, "KIT_COURSE_DIR": str(course.COURSE),
                                   "JUPYTER_CONFIG_PATH": str(room.instructor_config)}
            return
        home = (await asyncio.to_thread(ensure_account, name, room.home_root)).pw_dir
        await asyncio.to_thread(add_student, account(name))  # nbgrader's id: the OS account
        spawner.notebook_dir = home
        spawner.args = [*NO_NETWORK_CHECKS, *(
            f"--ServerApp.jpserver_extensions=nbgrader.server_extensions.{ext}=False"
            for ext in LEARNER_DISABLED_SERVER_EXTENSIONS)]
        spawner.environment = {**spawner.environment,
                               "JUPYTER_CONFIG_PATH": str(room.learner_config)}
    return hook
