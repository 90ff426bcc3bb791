"""The two private IPython/ipykernel names the kit relies on, pinned so an upgrade that changes
them fails here, loudly, instead of silently changing what learners see.

- `Kernel._allow_stdin` (helpers/live_display.py): whether the current request came from a
  person's frontend. The public `Kernel.get_parent()` holds the same flag, but in a context
  variable that threads started by a cell (a chat panel streaming in the background) don't see.
- `InteractiveShell._showtraceback(etype, evalue, stb)` (helpers/friendly_errors.py): shows a
  cell's error output with our one-paragraph text in place of the traceback; it is IPython's
  documented override point for that, with no public twin.
"""

from __future__ import annotations

import inspect


def test_kernel_keeps_allow_stdin_as_a_trait_set_per_request():
    from ipykernel.ipkernel import IPythonKernel
    from ipykernel.kernelbase import Kernel

    assert "_allow_stdin" in Kernel.class_traits(), "ipykernel renamed Kernel._allow_stdin"
    source = inspect.getsource(IPythonKernel._forward_input)  # called for each execute request
    assert "self._allow_stdin = allow_stdin" in source, \
        "ipykernel no longer sets _allow_stdin for each execute request"


def test_shell_showtraceback_takes_type_value_and_text():
    from IPython.core.interactiveshell import InteractiveShell

    parameters = list(inspect.signature(InteractiveShell._showtraceback).parameters)
    assert parameters == ["self", "etype", "evalue", "stb"], parameters
