"""The one-time llama-server build: cache reuse and clear messages for missing tools."""

from __future__ import annotations

import pytest

from helpers.friendly_errors import KitError
from helpers.offline import build


def test_missing_build_tools_name_the_packages(monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(KitError) as info:
        build.check_build_tools()
    message = str(info.value)
    assert "cmake" in message and "build-essential" in message and "apt-get install" in message


def test_present_tools_pass(monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: f"/usr/bin/{name}")
    build.check_build_tools()


def test_cached_binary_is_reused_without_building(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    binary = build.server_binary()
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setattr(build, "build_llama_server", lambda: pytest.fail("must not rebuild"))
    assert build.ensure_llama_server() == binary
    assert "cached build" in capsys.readouterr().out


def test_missing_binary_triggers_exactly_one_build(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(build, "build_llama_server", lambda: calls.append(1) or "built")
    assert build.ensure_llama_server(quiet=True) == "built"
    assert calls == [1]


def test_portable_builds_are_cached_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    native = build.server_binary()
    monkeypatch.setenv("KIT_LLAMA_NATIVE", "0")
    assert build.server_binary() != native


def test_source_is_pinned_by_version_and_hash():
    assert build.SOURCE_VERSION.count(".") == 2
    assert len(build.SOURCE_SHA256) == 64
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in build.CMAKE_OPTIONS
