"""The offline server process: llama.cpp's own HTTP server, prebuilt in the xllamacpp wheel.

    python -m llm_kit.offline.engine --model PATH [--host 127.0.0.1] [--port 8000] [--parallel 6]

It loads the model, serves the OpenAI-compatible API (continuous batching over `--parallel`
slots, /health, /v1/models, /slots, /metrics) and runs until SIGTERM, SIGINT or SIGHUP.
`llm_kit.offline.server` starts and stops it; containers run it in the foreground.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from helpers.friendly_errors import KitError
from helpers.settings import OFFLINE_MODEL_ID

from .config import CONTEXT_PER_SLOT, DEFAULT_PARALLEL, DEFAULT_PORT, MAX_TOKENS, REPEAT_PENALTY
from .cpu import require_supported_cpu


def engine_params(model: str, host: str, port: int, parallel: int):
    """xllamacpp's CommonParams: the same settings as llama-server's command-line flags."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {OFFLINE_MODEL_ID}      # --alias: the id /v1/models reports
    params.hostnames = [host]                    # --host
    params.port = port                           # --port
    params.n_parallel = parallel                 # --parallel: slots batched together
    params.n_ctx = parallel * CONTEXT_PER_SLOT   # --ctx-size, shared by the slots
    params.n_predict = MAX_TOKENS                # --n-predict
    params.cont_batching = True                  # --cont-batching
    params.sampling.penalty_repeat = REPEAT_PENALTY
    params.ui = False                            # --no-webui
    params.endpoint_metrics = True               # --metrics: /metrics for the lessons
    params.endpoint_slots = True                 # /slots: which slot is generating
    params.endpoint_props = True                 # /props: total_slots
    return params


def serve(model: str, host: str, port: int, parallel: int) -> int:
    """Serve until a stop signal arrives; returns the exit code."""
    require_supported_cpu()  # before the import that would die on SIGILL
    import xllamacpp

    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
    server = xllamacpp.Server(engine_params(model, host, port, parallel))  # returns once listening
    print(f"serving {OFFLINE_MODEL_ID} on {server.listening_address} ({parallel} slots)",
          flush=True)
    while not stop.wait(0.5):
        pass
    print("stop signal received; shutting down", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the C++ server's threads hold no state worth a slow teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_kit.offline.engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    args = parser.parse_args(argv)
    try:
        return serve(args.model, args.host, args.port, args.parallel)
    except KitError as exc:
        print(f"⚠ {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
