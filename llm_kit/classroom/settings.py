"""The classroom's settings, in one place: the local hub (hub_config.py) and the Zero to
JupyterHub values file (z2jh-values.yaml, checked against `z2jh_values`) both read them."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..grading.course import COURSE_ID

# Hub names a learner may sign in with: short, lower case, no dots or slashes. The OS account is
# the name behind a prefix (USER_PREFIX), so no learner can become an existing system user.
USERNAME_PATTERN = r"^[a-z][a-z0-9_-]{1,19}$"
USER_PREFIX = "kit-"
ACCOUNT_COMMENT = "llm-kit classroom learner"  # GECOS of every OS account the classroom creates
DEFAULT_HUB_PORT = 8100  # JupyterHub's own default, 8000, is the offline server's
CULL_IDLE_S = 3600  # an idle learner's server is stopped after this
# nbgrader's JupyterLab plugins a learner does not get (the Assignments tab and Validate stay)
LEARNER_DISABLED_PLUGINS = ["@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                            "@jupyter/nbgrader:course-list",
                            "@jupyterlab/apputils-extension:announcements"]
LEARNER_DISABLED_SERVER_EXTENSIONS = ["formgrader", "course_list"]
SHARED_PASSWORD_AUTHENTICATOR = "jupyterhub.authenticators.shared.SharedPasswordAuthenticator"
EXCHANGE_MOUNT = "/srv/nbgrader/exchange"  # on Kubernetes: the shared volume's mount point
MIN_CODE_LENGTH = 8  # SharedPasswordAuthenticator's minimum for user_password
MIN_ADMIN_PASSWORD_LENGTH = 32  # ... and for admin_password


@dataclass(frozen=True)
class Room:
    """Where a classroom keeps its things on this host, and how it is reached."""

    root: Path  # hub state (root-only), the learners' config, the exchange
    home_root: Path  # learners' homes: <home_root>/<USER_PREFIX><name>, 0700 each
    exchange: Path  # nbgrader's exchange root
    port: int = DEFAULT_HUB_PORT
    ip: str = "127.0.0.1"
    cull_idle_s: int = CULL_IDLE_S
    instructors: tuple[str, ...] = ("instructor",)

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def learner_config(self) -> Path:
        return self.root / "learner-config"

    @property
    def instructor_config(self) -> Path:
        return self.hub_dir / "instructor-config"


def room_from_env(env: dict[str, str] | None = None, port: int | None = None,
                  ip: str | None = None) -> Room:
    """The room the KIT_CLASSROOM_* variables (or their defaults) describe."""
    env = os.environ if env is None else env
    root = Path(env.get("KIT_CLASSROOM_ROOT") or "/srv/llm-kit-classroom")
    instructors = tuple(n for n in re.split(r"[,\s]+", env.get("KIT_INSTRUCTORS", "instructor")) if n)
    return Room(root=root, home_root=Path(env.get("KIT_CLASSROOM_HOME_ROOT") or "/home"),
                exchange=Path(env.get("KIT_EXCHANGE_ROOT") or root / "exchange"),
                port=port or int(env.get("KIT_CLASSROOM_PORT") or DEFAULT_HUB_PORT),
                ip=ip or env.get("KIT_CLASSROOM_IP") or "127.0.0.1",
                cull_idle_s=int(env.get("KIT_CULL_IDLE_S") or CULL_IDLE_S),
                instructors=instructors or ("instructor",))


def valid_username(name: str) -> bool:
    return re.fullmatch(USERNAME_PATTERN, name) is not None


def account(name: str) -> str:
    """The OS account behind hub user `name`."""
    return USER_PREFIX + name


@dataclass(frozen=True)
class Secrets:
    workshop_code: str
    instructor_password: str
    generated: tuple[str, ...]  # which of the two were generated now (print them once)


def secrets_from_env(env: dict[str, str] | None = None) -> Secrets:
    """KIT_WORKSHOP_CODE and KIT_INSTRUCTOR_PASSWORD from the environment or .env, else new ones."""
    env = os.environ if env is None else env
    code, password = env.get("KIT_WORKSHOP_CODE", ""), env.get("KIT_INSTRUCTOR_PASSWORD", "")
    generated = []
    if not code:
        code, generated = "-".join(secrets.token_hex(2) for _ in range(3)), ["KIT_WORKSHOP_CODE"]
    if not password:
        password = secrets.token_urlsafe(32)
        generated.append("KIT_INSTRUCTOR_PASSWORD")
    return Secrets(code, password, tuple(generated))


def learner_environment(base_url: str, model: str) -> dict[str, str]:
    """What every learner's server and kernels get, with nothing to set up themselves."""
    return {"NIM_BASE_URL": base_url, "NIM_MODEL": model, "NVIDIA_USAGE_TELEMETRY_ENABLED": "0"}


def nbgrader_learner_config(exchange: Path | str) -> dict:
    """nbgrader's settings for a learner: the course and where the exchange is."""
    return {"CourseDirectory": {"course_id": COURSE_ID}, "Exchange": {"root": str(exchange)}}


def hub_settings(room: Room | None = None) -> dict:
    """The hub settings the local hub and Zero to JupyterHub share."""
    return {
        "authenticator_class": SHARED_PASSWORD_AUTHENTICATOR,
        "username_pattern": USERNAME_PATTERN,
        "admin_users": sorted(room.instructors if room else ("instructor",)),
        "course_id": COURSE_ID,
        "exchange_root": str(room.exchange) if room else EXCHANGE_MOUNT,
        "cull_idle_s": room.cull_idle_s if room else CULL_IDLE_S,
        "learner_disabled_plugins": LEARNER_DISABLED_PLUGINS,
    }


def z2jh_values(nim_base_url: str = "http://llama:8000/v1",
                model: str = "meta/llama-3.1-8b-instruct") -> dict:
    """The parts of the Zero to JupyterHub chart's values that carry `hub_settings` (the file
    z2jh-values.yaml must hold these, with the same values)."""
    shared = hub_settings()
    return {
        "hub": {"config": {
            "JupyterHub": {"authenticator_class": "shared-password"},
            "Authenticator": {"username_pattern": shared["username_pattern"],
                              "admin_users": shared["admin_users"], "allow_all": True},
        }},
        "singleuser": {
            "extraEnv": {**learner_environment(nim_base_url, model),
                         "KIT_EXCHANGE_ROOT": shared["exchange_root"],
                         "KIT_COURSE_ID": shared["course_id"]},
        },
        "cull": {"enabled": True, "timeout": shared["cull_idle_s"]},
    }
