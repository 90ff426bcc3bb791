"""Can this processor run the prebuilt llama.cpp server? (The x86_64 wheel needs AVX2.)"""

from __future__ import annotations

import platform
import signal
import sys
from pathlib import Path

from helpers.friendly_errors import KitError

ENGINE_PACKAGE = "xllamacpp"
ENGINE_VERSION = "2026.10.11549"  # keep equal to the pin in pyproject.toml (a test checks)

NO_AVX2 = (
    "This computer's processor lacks AVX2, which the prebuilt llama.cpp server (the "
    f"{ENGINE_PACKAGE} wheel) needs on x86_64; almost every Intel and AMD CPU since 2013-2015 has "
    "it, but some virtual machines hide it. Run the kit another way: use NVIDIA's hosted API "
    "catalog (put NVIDIA_API_KEY=nvapi-... in .env; no local model needed), point NIM_BASE_URL at "
    "a NIM or other OpenAI-compatible server, enable AVX2 for the virtual machine, or compile "
    "the same server for this CPU (needs a C++ compiler and cmake, 15-30 minutes): "
    f"`.venv/bin/pip install --force-reinstall --no-binary {ENGINE_PACKAGE} "
    f"{ENGINE_PACKAGE}=={ENGINE_VERSION}`, then run the command again."
)


def lacks_avx2(cpuinfo: str | None = None, machine: str | None = None,
               os_name: str | None = None) -> bool:
    """True when this is an x86_64 CPU known to lack AVX2 (unknown counts as fine)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return False  # arm64 wheels need no AVX2
    os_name = os_name or sys.platform
    if os_name.startswith("linux"):
        if cpuinfo is None:
            try:
                cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
            except OSError:
                return False
        flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
        return bool(flags) and "avx2" not in flags.split()
    if os_name == "win32":
        import ctypes

        PF_AVX2_INSTRUCTIONS_AVAILABLE = 40
        return not ctypes.windll.kernel32.IsProcessorFeaturePresent(PF_AVX2_INSTRUCTIONS_AVAILABLE)
    return False


def require_supported_cpu() -> None:
    """Fail with a paragraph naming what to do, instead of an 'Illegal instruction' crash."""
    if lacks_avx2():
        raise KitError(NO_AVX2)


def crashed_on_cpu(returncode: int | None) -> bool:
    """True when a process ended on SIGILL (an instruction this CPU does not have)."""
    return returncode is not None and returncode in (-signal.SIGILL, 128 + signal.SIGILL)
