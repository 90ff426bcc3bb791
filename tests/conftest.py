"""Shared fixtures (one real offline llama-server for each test process) and the tier rule: a
test's marker is the name of its folder, tests/<tier>/."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from helpers.settings import OFFLINE_MODEL_ID

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "server", "browser", "workflows")
SERVER_FIXTURES = {"offline_server", "llm"}
NO_SERVER_TIERS = ("unit", "integration")
# the tiers that measure: they share one server, one test at a time, and get the CPU first
MEASURING_TIER_PATHS = ("tests/server/", "tests/browser/")
BACKGROUND_NICENESS = 10  # the other worker's share of a busy CPU: about a tenth
BACKGROUND_CGROUP = "llm-kit-tests-background"
_background = False  # set in the worker that runs the tiers which do not measure
_STARTED = time.monotonic()


def tier_of(item) -> str | None:
    """The tier folder a test lives in (None outside tests/<tier>/)."""
    parts = Path(item.path).resolve().relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def _wrong_tier(item, fixtures) -> str | None:
    used = sorted(SERVER_FIXTURES & set(fixtures))
    tier = tier_of(item)
    if used and tier in NO_SERVER_TIERS:
        return (f"{item.nodeid} uses the model server ({', '.join(used)}) but lives in tests/{tier}/: "
                f"move it to tests/server/ (or tests/browser/ if it drives chromium)")
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark every test with its folder's tier; `-m server` and the like select by folder."""
    for item in items:
        tier = tier_of(item)
        if tier is None:
            raise pytest.UsageError(f"{item.nodeid}: test files live in tests/<tier>/, one of {TIERS}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (`make test` runs two workers), every test of the tiers that measure
    (server, browser) goes to one worker, one after another, so no measurement shares the
    server or its slots with another test. The other worker runs the workflows (first: they
    take longest), then the unit and integration tests, at a lower CPU priority (see
    `_run_in_the_background`), with a server of its own."""
    from xdist.scheduler import LoadScopeScheduling

    class MeasuringTestsOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(MEASURING_TIER_PATHS):
                return "measuring"
            return "workflows" if nodeid.startswith("tests/workflows/") else nodeid

    return MeasuringTestsOnOneWorker(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Each worker's finishing time, to see which one the run waits for."""
    reporter = node.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"worker {node.gateway.id} finished after {time.monotonic() - _STARTED:.0f} s")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A unit or integration test that asks for the model server fails before it starts one;
    under xdist, a test that measures nothing lowers its worker's priority first."""
    wrong = _wrong_tier(item, getattr(item, "fixturenames", ()))
    if wrong:
        pytest.fail(wrong, pytrace=False)
    if os.environ.get("PYTEST_XDIST_WORKER") and not item.nodeid.startswith(MEASURING_TIER_PATHS):
        _run_in_the_background()


def _run_in_the_background() -> None:
    """This worker (and all it starts: kernels, servers, nbgrader, hubs) yields the CPU to the
    measuring worker: its tests assert outcomes, never timings."""
    global _background
    if not _background:
        _background = True
        os.nice(BACKGROUND_NICENESS)
        _join_the_background_cpu_group()


def _join_the_background_cpu_group() -> None:
    """Kernels, servers and hubs start sessions of their own, and Linux weighs each session's
    autogroup alike whatever its nice value; a cpu cgroup with a small weight holds them all
    (cgroup v1 `cpu.shares` or v2 `cpu.weight`, as root). Elsewhere nice alone."""
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    try:
        if (v1 / "cpu.shares").is_file():
            group, knob, weight = v1 / BACKGROUND_CGROUP, "cpu.shares", "102"  # default 1024
        elif "cpu" in (v2 / "cgroup.subtree_control").read_text().split():
            group, knob, weight = v2 / BACKGROUND_CGROUP, "cpu.weight", "10"  # default 100
        else:
            return
        group.mkdir(exist_ok=True)
        (group / knob).write_text(weight)
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return  # not root, or no cpu controller to write: nice alone


@pytest.fixture(autouse=True)
def _tier_cannot_lie(request):
    """The same rule for the server fetched at run time (request.getfixturevalue)."""
    yield
    wrong = _wrong_tier(request.node, request.fixturenames)
    if wrong:
        pytest.fail(wrong, pytrace=False)


@pytest.fixture(scope="session")
def offline_server():
    """A real llama.cpp server (SmolLM2-135M) on a free 127.0.0.1 port; stopped at the end.

    Exports NIM_BASE_URL/NIM_MODEL so notebooks and subprocesses use it.
    """
    from helpers.ports import free_port
    from llm_kit.backend import pick_backend

    # reused when running there (a developer may keep one between runs), else started and
    # stopped; the background worker always has its own, so no measurement shares a server
    reuse = None if _background else os.environ.get("KIT_TEST_SERVER_PORT")
    port = int(reuse or free_port())
    with pick_backend(port, say=None) as backend:
        status = backend.server
        saved = {k: os.environ.get(k) for k in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY")}
        os.environ["NIM_BASE_URL"] = status.base_url
        os.environ["NIM_MODEL"] = OFFLINE_MODEL_ID
        os.environ.pop("NVIDIA_API_KEY", None)
        yield status
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def llm(offline_server):
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    return ChatNVIDIA(base_url=offline_server.base_url, model=OFFLINE_MODEL_ID, temperature=0)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No backend configured and no .env in sight (the working directory is empty)."""
    for name in ("NIM_BASE_URL", "NIM_MODEL", "NVIDIA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
