"""`llm-kit workshop` without starting anything: which backend it picks when nothing is configured
or nothing answers, and the lab command it builds for learners and instructors (`--dry-run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.ports import free_port
from llm_kit.workshop import INSTRUCTOR_PLUGINS, NEWS, choose_backend, lab_command, lab_config_dir

from support import REPO

KIT = Path(sys.executable).parent / "llm-kit"


def test_nothing_configured_means_offline(clean_env):
    settings, start_offline = choose_backend(8123)
    assert start_offline
    assert settings.base_url == "http://127.0.0.1:8123/v1"
    assert settings.backend == "offline"


def test_configured_but_unreachable_falls_back_to_offline(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("NIM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    settings, start_offline = choose_backend(8124)
    assert start_offline and settings.backend == "offline"
    assert "falling back to the offline model" in capsys.readouterr().out


def test_lab_binds_loopback_by_default():
    command = lab_command(8888, "127.0.0.1")
    assert "--ip=127.0.0.1" in command and "--no-browser" in command
    if os.geteuid() == 0:
        assert "--allow-root" in command


def test_learners_get_their_copies_and_validate_instructors_get_everything():
    learner, instructor = lab_command(8888, "127.0.0.1"), lab_command(8888, "127.0.0.1", True)
    assert f"--ServerApp.root_dir={REPO / 'notebooks'}" in learner
    assert f"--ServerApp.root_dir={REPO}" in instructor
    off = {arg.split("=", 1)[1] for arg in learner if arg.startswith("--ServerApp.jpserver_extensions")}
    assert off == {f"nbgrader.server_extensions.{name}=False"
                   for name in ("formgrader", "course_list", "assignment_list")}
    assert not any("jpserver_extensions" in arg for arg in instructor)
    for command in (learner, instructor):
        assert "--LabApp.news_url=None" in command
    disabled = {mode: json.loads((lab_config_dir(mode) / "labconfig" / "page_config.json")
                                 .read_text())["disabledExtensions"] for mode in (False, True)}
    assert set(disabled[False]) == {NEWS} | {f"@jupyter/nbgrader:{p}" for p in INSTRUCTOR_PLUGINS}
    assert "@jupyter/nbgrader:validate-assignment" not in disabled[False]
    assert set(disabled[True]) == {NEWS}


def test_instructor_lab_is_rooted_at_the_repository(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NIM_BASE_URL", "NVIDIA_API_KEY")}
    done = subprocess.run([str(KIT), "instructor", "--dry-run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"--ServerApp.root_dir={REPO} " in done.stdout + " "
    assert "jpserver_extensions" not in done.stdout
