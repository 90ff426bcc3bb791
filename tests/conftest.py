"""Shared fixtures: one real offline llama-server for the whole session, notebook runners."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a prerequisite is missing, but fail under CI=true (nothing skips in CI)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


SERVER_FIXTURES = {"offline_server", "llm"}
# Tests that start Jupyter kernels, nbgrader or JupyterLab (seconds each): the middle tier.
INTEGRATION_MODULES = {"test_release_sync", "test_workshop", "test_display_in_kernel"}
INTEGRATION_TESTS = ("test_fault_in_a_kernel", "test_nbgrader_lab_extension")


def _parameter_uses_server(item) -> bool:
    """A parametrised row (a function, as in the fault matrix) that fetches the server fixture
    with request.getfixturevalue or starts a server of its own."""
    callspec = getattr(item, "callspec", None)
    for value in (callspec.params.values() if callspec else ()):
        if inspect.isfunction(value):
            source = inspect.getsource(value)
            if '"offline_server"' in source or "start_server(" in source:
                return True
    return False


def pytest_collection_modifyitems(items):
    """Mark the tiers so `make test-fast` runs only the unit tier: every test that uses the
    real model server is a `server` test and every one that starts Jupyter machinery an
    `integration` test, whether or not its file says so."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or _parameter_uses_server(item):
            item.add_marker(pytest.mark.server)
        module = item.module.__name__ if getattr(item, "module", None) else ""
        if module in INTEGRATION_MODULES or item.name.startswith(INTEGRATION_TESTS):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def offline_server():
    """A real llama.cpp server (SmolLM2-135M) on a free 127.0.0.1 port; stopped at the end.

    Exports NIM_BASE_URL/NIM_MODEL so notebooks and subprocesses use it.
    """
    from helpers.ports import free_port
    from llm_kit.offline import server_status, start_server, stop_server

    port = int(os.environ.get("KIT_TEST_SERVER_PORT") or free_port())
    reuse = server_status(port).running  # a developer may keep one running between runs
    status = server_status(port) if reuse else start_server(port=port, quiet=True)
    saved = {k: os.environ.get(k) for k in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY")}
    os.environ["NIM_BASE_URL"] = status.base_url
    os.environ["NIM_MODEL"] = "smollm2-135m-instruct"
    os.environ.pop("NVIDIA_API_KEY", None)
    yield status
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if not reuse:
        stop_server(port, quiet=True)


@pytest.fixture(scope="session")
def llm(offline_server):
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    return ChatNVIDIA(base_url=offline_server.base_url, model="smollm2-135m-instruct",
                      temperature=0)
