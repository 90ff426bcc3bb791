"""The offline server's settings, in one place (the engine process and its manager read them)."""

from helpers.settings import OFFLINE_PORT

DEFAULT_PORT = OFFLINE_PORT  # the notebooks look for it there when nothing else is configured
DEFAULT_PARALLEL = 6  # slots: requests generated for at once
CONTEXT_PER_SLOT = 2048
MAX_TOKENS = 640  # default cap per answer when a request sets none
# A tiny model at temperature 0 tends to repeat itself until the cap; a mild penalty ends
# its answers naturally. (Sampling setting of the offline server only; a NIM is unaffected.)
REPEAT_PENALTY = 1.1
# How the manager starts the engine (`python -m ...`) and recognises it in a process list.
ENGINE_MODULE = "llm_kit.offline.engine"
