"""helpers.grading.call_log: the call recorder the hidden tests read cannot be fooled by a
submission that rebinds names or rewrites its functions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

RECORDER_CHECKS = textwrap.dedent("""
    import sys, time
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    import helpers.grading.call_log as helpers_log

    class Slow(BaseChatModel):  # a fake model that takes a while, for the recorder alone
        @property
        def _llm_type(self):
            return "slow"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            time.sleep(0.05)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok"))])

    log = helpers_log.record_calls()
    assert helpers_log.record_calls().calls == log.calls, "installed once per kernel"
    prompts = ["a", "b", "c"]
    Slow().batch(prompts)
    assert helpers_log.max_overlap(log.latest_for(prompts)) == 3
    for prompt in prompts:
        Slow().invoke(prompt)
    helpers_log.max_overlap = lambda calls: 99
    found = []
    sys.audit(helpers_log.GRADING_EVENT, found)
    grading = found[0]
    assert len(found) == 1 and grading.max_overlap(grading.latest_for(prompts)) == 1
    try:
        grading.max_overlap.__code__ = (lambda calls: 99).__code__
    except PermissionError:
        pass
    else:
        raise SystemExit("the grader's functions can be rewritten")
    from langchain_core.tracers.context import _configure_hooks
    recorder = next(var.get() for var, *_ in _configure_hooks if var.name == "llm_kit_call_recorder")
    type(recorder).on_chat_model_start = lambda *args, **kwargs: None
    try:
        grading.verify()
    except AssertionError as exc:
        print("verify:", exc)
""")


def test_recorder_cannot_be_fooled_by_rebinding(tmp_path):
    """Unit check of the recorder in a fresh interpreter (its hooks last for the process)."""
    done = subprocess.run([sys.executable, "-c", RECORDER_CHECKS], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "helpers.grading.call_log.max_overlap" in done.stdout, done.stdout
    assert "verify: the call recorder was changed by this notebook" in done.stdout, done.stdout
