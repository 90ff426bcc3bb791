"""The lab image starts the workshop exactly as the README tells a person to, and that command
picks the right backend and address (checked here with `llm-kit workshop --dry-run`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from helpers.settings import OFFLINE_MODEL_ID

from support import REPO, venv_tool

DOCKERFILE = REPO / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def image_start_command() -> str:
    instructions = dockerfile_instructions()
    entrypoint = [exec_form(args) for word, args in instructions if word == "ENTRYPOINT"]
    cmd = [exec_form(args) for word, args in instructions if word == "CMD"]
    assert cmd, "the Dockerfile needs a CMD"
    return " ".join((entrypoint[-1] if entrypoint else []) + cmd[-1])


def readme_workshop_command() -> str:
    """The workshop command from the README's quick-start code block."""
    readme = (REPO / "README.md").read_text()
    heading = re.search(r"^#+ .*quick ?start.*$", readme, re.IGNORECASE | re.MULTILINE)
    rest = readme[heading.end():] if heading else readme
    block = re.search(r"```(?:bash|sh|console|shell)?\n(.*?)```", rest, re.DOTALL)
    assert block, "the README has no quick-start code block"
    for line in block.group(1).splitlines():
        command = line.split("#", 1)[0].strip().removeprefix("$ ")
        if re.search(r"\bworkshop\b", command):
            return command
    raise AssertionError("the README's quick-start block has no workshop command")


def env_values() -> dict[str, str]:
    values = {}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                values[key] = value
    return values


def test_image_starts_with_the_readmes_workshop_command():
    assert readme_workshop_command() == "make workshop"
    assert image_start_command() == readme_workshop_command()


def test_image_builds_what_make_workshop_needs_ahead_of_time():
    runs = [args for word, args in dockerfile_instructions() if word == "RUN"]
    assert "make setup" in runs, "the virtualenv must be built into the image"
    assert not any("cmake" in run or "build-essential" in run for run in runs), \
        "the model server comes prebuilt: the image needs no compiler"
    env = env_values()
    assert env["KIT_LAB_IP"] == "0.0.0.0"
    assert env["KIT_CACHE_DIR"], "the model check's record must live at a fixed path in the image"
    # `make workshop` runs the same target, so the image's setup is what it finds.
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^workshop:\s*setup\b", makefile, re.MULTILINE)


def test_image_copies_both_packages():
    copies = [shlex.split(args) for word, args in dockerfile_instructions() if word == "COPY"]
    copied = {part.rstrip("/") for args in copies for part in args[:-1] if not part.startswith("--")}
    assert {"helpers", "llm_kit", "pyproject.toml"} <= copied


def test_image_copies_no_local_state():
    copies = [args for word, args in dockerfile_instructions() if word in ("COPY", "ADD")]
    sources = [part for args in copies for part in shlex.split(args)[:-1] if not part.startswith("--")]
    for source in sources:
        assert source not in (".", "./", ".env", ".venv"), f"COPY {source} would carry local state"


def test_image_python_matches_environment_yml():
    base = next(args for word, args in dockerfile_instructions() if word == "FROM")
    match = re.match(r"python:(\d+\.\d+)", base)
    assert match, base
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    assert f"python={match.group(1)}" in environment["dependencies"]


def test_compose_builds_this_image_once_per_profile():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    images = {services[name]["image"] for name in ("lab", "lab-cpu", "llama-cpu")}
    assert len(images) == 1, "the lab and the cpu model server share one image"
    for profile in ("gpu", "cpu"):
        users = [name for name, svc in services.items()
                 if profile in svc.get("profiles", []) and svc.get("image") in images]
        builders = [name for name in users if "build" in services[name]]
        assert len(builders) == 1, f"{profile}: exactly one service builds the image, not {builders}"
        for name in set(users) - set(builders):
            assert services[name].get("pull_policy") == "never", f"{name} must not pull the image"
    for name in ("lab", "lab-cpu"):  # they run the image's own CMD, i.e. `make workshop`
        assert "command" not in services[name] and "entrypoint" not in services[name]


# --- what `make workshop` would start, without starting it ---------------------------------

def dry_run(tmp_path: Path, **extra: str) -> tuple[str, Path]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY", "KIT_LAB_IP", "KIT_LAB_PORT",
                          "KIT_SERVER_PORT", "JUPYTER_TOKEN")}
    cache = tmp_path / "cache"
    env.update(KIT_CACHE_DIR=str(cache), **extra)
    done = subprocess.run([venv_tool("llm-kit"), "workshop", "--dry-run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, cache


def lines_starting(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


def test_dry_run_picks_the_offline_backend_on_localhost(tmp_path):
    output, cache = dry_run(tmp_path)
    backend = lines_starting(output, "backend:")
    assert backend == [f"backend: offline http://127.0.0.1:8000/v1 {OFFLINE_MODEL_ID}"], output
    lab = lines_starting(output, "jupyterlab:")
    assert len(lab) == 1, output
    words = lab[0].split()
    assert "jupyterlab" in words and "--ip=127.0.0.1" in words, lab[0]
    assert "--port=8888" in words
    started = list(cache.rglob("*")) if cache.exists() else []
    assert started == [], f"--dry-run must start nothing, yet it wrote {started}"


def test_dry_run_binds_all_interfaces_in_a_container(tmp_path):
    output, _ = dry_run(tmp_path, KIT_LAB_IP="0.0.0.0")
    lab = lines_starting(output, "jupyterlab:")
    assert len(lab) == 1 and "--ip=0.0.0.0" in lab[0].split(), output
    assert "--ip=127.0.0.1" not in lab[0].split()
