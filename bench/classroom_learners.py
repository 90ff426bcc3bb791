"""A classroom under load: N learners at the hub, each running notebook 2's cells at the same time.

    sudo .venv/bin/python bench/classroom_learners.py [N=5] [--slots 8] [--model-url URL]

Starts `llm-kit classroom` (as root: it creates an OS user per learner) in a folder of its own
under /tmp, on the offline server the command starts with --slots parallel slots, or on a model
server already running at --model-url. N learners sign in through the hub's login form with the
workshop code (llm_kit/classroom/client.py, as the classroom test does); each one's own server
runs a kernel of its own with notebook 2's setup cell. Then, all learners together, phase by
phase (every learner finishes a phase before the next starts):

  stream  one prompt, notebook 2's `stream_print` prompt: time to first token (TTFT) in the
          learner's kernel, with the whole room pressing the same cell;
  loop    notebook 2's state-capital questions as a loop of `llm.invoke`;
  batch   the same questions as one `llm.batch` (notebook 2's `compare`, loop then batch).

Prints a table per learner, then as its last line:

    learners=N p50_ttft_s=<x> p95_ttft_s=<x> batch_vs_loop_under_load=<x>

batch_vs_loop_under_load is loop time / batch time, the median over learners (above 1: the
batch still wins with the whole room running it). Stops the hub, every learner's server and
kernels, the model server it started, and removes the learners' OS users and folders on exit,
Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from helpers.latency import percentile  # noqa: E402 - after the path above
from llm_kit.classroom.client import HubUser  # noqa: E402

from support.classroom import classroom, learners_can_enter_python  # noqa: E402

NOTEBOOK = REPO / "notebooks" / "02_streaming_and_batching.ipynb"
PHASES = ("stream", "loop", "batch")
PHASE_TIMEOUT_S = 900  # one phase of one learner, on 2 busy cores (a bound, not a timing)
SETUP = """
import json, time
from langchain_nvidia_ai_endpoints import ChatNVIDIA
from helpers import check_backend

settings = check_backend()
llm = ChatNVIDIA(base_url=settings.base_url, model=settings.model, temperature=0,
                 max_completion_tokens=settings.max_answer_tokens)
prompts = {prompts!r}
"""
CODE = {
    "stream": """
started, first = time.perf_counter(), None
for chunk in llm.stream({prompt!r}):
    if first is None and chunk.content:
        first = time.perf_counter() - started
print("KIT " + json.dumps({{"ttft_s": first, "stream_s": time.perf_counter() - started}}))
""",
    "loop": """
started = time.perf_counter()
answers = [llm.invoke(q) for q in prompts]
print("KIT " + json.dumps({{"loop_s": time.perf_counter() - started}}))
""",
    "batch": """
started = time.perf_counter()
answers = llm.batch(prompts)
print("KIT " + json.dumps({{"batch_s": time.perf_counter() - started}}))
""",
}


def notebook_prompts(path: Path = NOTEBOOK) -> tuple[list[str], str]:
    """Notebook 2's batch questions (the list its `llm.batch(...)` cell sends) and the prompt of
    its `stream_print` cell."""
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]

    def assigned(source: str) -> dict:
        found = {}
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                try:
                    found[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
        return found

    questions = stream_prompt = None
    for source in cells:
        values = assigned(source)
        for name, value in values.items():
            if questions is None and f"llm.batch({name})" in source and isinstance(value, list):
                questions = value
        if stream_prompt is None and "stream_print(llm.stream(" in source:
            stream_prompt = next((v for v in values.values() if isinstance(v, str)), None)
    if not questions or not stream_prompt:
        raise SystemExit(f"{path}: no `llm.batch(<list>)` cell or no `stream_print` prompt found")
    return questions, stream_prompt


class Learner(threading.Thread):
    """One learner: signs in, starts their server and a kernel, runs the setup cell, then each
    phase when the whole room is ready for it."""

    def __init__(self, room, who: str, gate: threading.Barrier, questions: list[str], prompt: str):
        super().__init__(daemon=True, name=who)  # daemon: a stopped bench does not wait for it
        self.room, self.who, self.gate, self.questions, self.prompt = room, who, gate, questions, prompt
        self.result: dict = {}
        self.error: str | None = None

    def run(self) -> None:
        try:
            user = HubUser(self.room.base, self.room.name(self.who), self.room.code)
            user.start_server()
            with user.kernel() as execute:
                self._step(execute, SETUP.format(prompts=self.questions))
                for phase in PHASES:
                    self.gate.wait(timeout=PHASE_TIMEOUT_S)
                    self.result.update(self._step(execute, CODE[phase].format(prompt=self.prompt)))
        except Exception as exc:  # noqa: BLE001 - reported per learner, the others go on
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            self.gate.abort()

    def _step(self, execute, code: str) -> dict:
        output, status = execute(code, PHASE_TIMEOUT_S)
        if status != "ok":
            raise RuntimeError(f"{status}: {output[-300:]}")
        lines = [line for line in output.splitlines() if line.startswith("KIT ")]
        return json.loads(lines[-1][4:]) if lines else {}


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop the bench as Ctrl-C does; a second signal cannot cut the clean-up
    short."""
    def stop(signum, _frame):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("learners", nargs="?", type=int, default=5)
    parser.add_argument("--slots", type=int, default=8, help="the offline server's parallel slots")
    parser.add_argument("--model-url", help="a model server already running (its /v1 URL)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("The classroom creates an OS user per learner: run the bench as root.")
    questions, prompt = notebook_prompts()
    stop_on_signals()
    started = time.perf_counter()
    learners: list[Learner] = []
    try:
        with learners_can_enter_python(), classroom(args.model_url, slots=args.slots) as room:
            shared = next((line.split(":", 1)[1].strip() for line in room.lines
                           if line.startswith("Shared model:")), "?")
            print(f"classroom up in {time.perf_counter() - started:.1f} s; shared model {shared}; "
                  f"{args.learners} learners × {len(questions)} batch questions", flush=True)
            gate = threading.Barrier(args.learners)
            learners = [Learner(room, f"l{i:02d}", gate, questions, prompt) for i in range(args.learners)]
            for learner in learners:
                learner.start()
            for learner in learners:  # join in slices: Ctrl-C and signals reach this thread
                while learner.is_alive():
                    learner.join(0.5)
            print(f"all learners done in {time.perf_counter() - started:.1f} s; stopping the classroom",
                  flush=True)
    except KeyboardInterrupt as reason:
        print(f"\nStopped ({reason or 'Ctrl-C'}): the classroom, its learners and servers are gone.",
              file=sys.stderr)
        return 130
    return report(learners)


def report(learners: list[Learner]) -> int:
    done = [ln for ln in learners if ln.error is None and all(
        k in ln.result for k in ("ttft_s", "loop_s", "batch_s")) and ln.result["ttft_s"] is not None]
    print(f"\n{'learner':<8} {'ttft_s':>7} {'stream_s':>9} {'loop_s':>7} {'batch_s':>8} {'loop/batch':>11}")
    for ln in learners:
        r = ln.result
        if ln in done:
            print(f"{ln.who:<8} {r['ttft_s']:>7.2f} {r['stream_s']:>9.2f} {r['loop_s']:>7.2f} "
                  f"{r['batch_s']:>8.2f} {r['loop_s'] / r['batch_s']:>11.2f}")
        else:
            print(f"{ln.who:<8} failed: {ln.error or r}")
    ttfts = [ln.result["ttft_s"] for ln in done]
    ratios = [ln.result["loop_s"] / ln.result["batch_s"] for ln in done]
    nan = float("nan")
    p50, p95 = (percentile(ttfts, 50) or nan), (percentile(ttfts, 95) or nan)
    ratio = statistics.median(ratios) if ratios else nan
    print(f"learners={len(learners)} p50_ttft_s={p50:.2f} p95_ttft_s={p95:.2f} "
          f"batch_vs_loop_under_load={ratio:.2f}")
    return 0 if len(done) == len(learners) else 1


if __name__ == "__main__":
    sys.exit(main())
