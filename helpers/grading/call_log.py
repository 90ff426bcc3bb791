"""Record what every chat-model call in the kernel did (prompt, start, end, answer) — for tests.

`record_calls()`, run by an exercise's locked setup cell, registers one LangChain callback
handler for the whole kernel (a configure hook, the mechanism LangChain's own tracers use), so a
call is seen whichever chat model makes it: the notebook's `llm`, a model the answer cell builds,
a chain, `with_config` or a `RunnableLambda` around one, sync or async.

Graders decide "was `batch` used?" from behaviour: `batch` runs its calls concurrently, so their
time intervals overlap; a loop of `invoke` never overlaps. No wall-clock thresholds, no reading
of source code.

Hidden tests trust no name a submission can rebind. `record_calls()` loads a private copy of
this module and of `faq.py` (fresh function objects that no import statement reaches) and hands
it out only through `sys.audit(GRADING_EVENT, found)`, answered by an audit hook, which Python
lets nobody remove. So a submission that rebinds `max_overlap`, or anything else in
`helpers.grading`, changes what visible tests see but not what hidden tests decide, and the
hidden tests say in the feedback what was changed. A submission runs in the same process as its
tests, so a determined one can still forge callback events or rewrite Python's builtins; this
closes the easy way, rebinding a name.
"""

from __future__ import annotations

import builtins
import importlib.util
import sys
import threading
import time
import types
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import _configure_hooks, register_configure_hook

GRADING_EVENT = "llm_kit.grading"  # sys.audit(GRADING_EVENT, found) appends the grader's copy


@dataclass(frozen=True)
class Call:
    prompt: str
    started: float
    ended: float | None = None
    output: str | None = None
    error: str | None = None


def answer_text(answer) -> str:
    """An answer's text, whether it is a chat message or a plain string."""
    return answer.content if hasattr(answer, "content") else str(answer)


def _prompt_text(messages: list[list[Any]]) -> str:
    batch = messages[0] if messages else []
    return str(batch[-1].content) if batch else ""


def new_recorder() -> tuple[BaseCallbackHandler, Callable[[], list[Call]]]:
    """A callback handler and a function returning what it recorded, oldest call first.

    The records live in this closure: nothing but the returned function reads them.
    """
    calls: dict[UUID, Call] = {}
    lock = threading.Lock()
    clock = time.monotonic

    class Recorder(BaseCallbackHandler):
        run_inline = True  # record in the calling thread, also inside asyncio

        def on_chat_model_start(self, serialized, messages, *, run_id: UUID, **kwargs) -> None:
            with lock:
                calls[run_id] = Call(prompt=_prompt_text(messages), started=clock())

        def on_llm_end(self, response, *, run_id: UUID, **kwargs) -> None:
            generations = response.generations
            text = generations[0][0].text if generations and generations[0] else ""
            with lock:
                if run_id in calls:
                    calls[run_id] = replace(calls[run_id], ended=clock(), output=text)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs) -> None:
            with lock:
                if run_id in calls:
                    calls[run_id] = replace(calls[run_id], ended=clock(),
                                            error=f"{type(error).__name__}: {error}")

    def recorded() -> list[Call]:
        with lock:
            return sorted(calls.values(), key=lambda call: call.started)

    return Recorder(), recorded


def latest_for(calls: list[Call], prompts: list[str]) -> list[Call | None]:
    """For each prompt, the most recent finished call that sent it (None where none did).

    A call sent a prompt when its last message is the prompt or contains it (a template may
    wrap the question).
    """
    found: list[Call | None] = []
    for prompt in prompts:
        matching = [c for c in calls if c.ended is not None and c.error is None
                    and (c.prompt == prompt or prompt in c.prompt)]
        found.append(matching[-1] if matching else None)
    return found


def max_overlap(calls: list[Call | None]) -> int:
    """The largest number of calls that were in flight at the same moment."""
    events = []
    for call in calls:
        if call is not None and call.ended is not None:
            events += [(call.started, 1), (call.ended, -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts on ties
        running += step
        peak = max(peak, running)
    return peak


class CallLog:
    """What the recorder saw, for visible tests: `calls` and `latest_for(prompts)`."""

    def __init__(self, recorded: Callable[[], list[Call]]) -> None:
        self._recorded = recorded

    @property
    def calls(self) -> list[Call]:
        return self._recorded()

    def latest_for(self, prompts: list[str]) -> list[Call | None]:
        return latest_for(self.calls, prompts)


def record_calls() -> CallLog:
    """Record every chat-model call in this kernel from now on; returns the log visible tests read.

    Installs once per kernel: running the setup cell again returns the same recording.
    """
    found: list = []
    sys.audit(GRADING_EVENT, found)
    if found:
        return CallLog(found[0].calls)
    here = Path(__file__).parent
    private = _private_copy(here / "call_log.py")
    faq = _private_copy(here / "faq.py")
    public = [m for m in (sys.modules.get("helpers.grading"), sys.modules[__name__],
                          sys.modules.get("helpers.grading.faq")) if m is not None]
    return CallLog(private.install_grader(faq, public).calls)


def _private_copy(path: Path) -> types.ModuleType:
    """A fresh instance of a module, registered nowhere: no import statement returns it."""
    name = f"_grader_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _state_of(modules: list[types.ModuleType]) -> dict[str, object]:
    """Every public name of the modules, and of the classes defined in them, with its value."""
    state = {}
    for module in modules:
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            state[f"{module.__name__}.{name}"] = value
            if isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in vars(value).items():
                    if not attr.startswith("__"):
                        state[f"{module.__name__}.{name}.{attr}"] = member
    return state


def install_grader(faq: types.ModuleType, public: list[types.ModuleType]) -> types.SimpleNamespace:
    """Called on the private copy: record every call, answer GRADING_EVENT with this copy."""
    handler, recorded = new_recorder()
    var: ContextVar = ContextVar("llm_kit_call_recorder", default=handler)
    register_configure_hook(var, inheritable=True)
    hook_entry = next(entry for entry in _configure_hooks if entry[0] is var)
    def members(obj) -> dict:
        return {name: value for name, value in vars(obj).items() if not name.startswith("__")}

    handler_state = (type(handler), members(type(handler)), members(handler))
    public_state = _state_of(public)
    shadowing = set(dir(builtins))

    def changed_helpers() -> list[str]:
        now = _state_of(public)
        names = [n for n, v in public_state.items() if now.get(n, changed_helpers) is not v]
        return names + [n for n in now if n not in public_state and n.rsplit(".", 1)[-1] in shadowing]

    def recorder_problem() -> str | None:
        cls, class_dict, instance_dict = handler_state
        if hook_entry not in _configure_hooks or var.get() is not handler:
            return "the call recorder was removed"
        if type(handler) is not cls or members(cls) != class_dict or members(handler) != instance_dict:
            return "the call recorder was changed"
        return None

    def verify() -> None:
        """Print what the notebook changed in the grading helpers; fail if it changed the recorder."""
        changed = changed_helpers()
        if changed:
            print("⚠ This notebook changed the grading helpers: " + ", ".join(changed) +
                  ". Hidden tests use their own copy, so the change earns nothing.")
        problem = recorder_problem()
        if problem:
            raise AssertionError(f"{problem} by this notebook: recorded calls cannot be trusted, "
                                 "so this test scores 0")

    def grader() -> types.SimpleNamespace:
        return types.SimpleNamespace(
            calls=recorded, latest_for=lambda prompts: latest_for(recorded(), list(prompts)),
            max_overlap=max_overlap, answer_text=answer_text, verify=verify,
            FAQ_QUESTIONS=list(faq.FAQ_QUESTIONS), expected_document=faq.expected_document)

    protected = {id(f) for f in (recorded, members, changed_helpers, recorder_problem, verify, grader,
                                 latest_for, max_overlap, answer_text, faq.expected_document)}
    protected |= {id(handler), id(type(handler))}

    def audit(event: str, args: tuple) -> None:
        if event == GRADING_EVENT and args and isinstance(args[0], list):
            args[0].append(grader())  # a fresh namespace each time: editing one changes nothing
        elif event == "object.__setattr__" and args and id(args[0]) in protected:
            raise PermissionError("The grading helpers are read-only.")

    sys.addaudithook(audit)
    return grader()
