"""stream_print inside a real kernel: plain text under nbclient, an in-place display when rich."""

from __future__ import annotations

import nbformat

from notebook_runner import execute

CELL = """
import time
from helpers import stream_print

def slow_tokens():
    for word in ["alpha ", "beta ", "gamma ", "delta"]:
        time.sleep(0.06)
        yield word

result = stream_print(slow_tokens(), title="demo")
"""


def _run(tmp_path, env):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    path = tmp_path / "display.ipynb"
    nbformat.write(notebook, path)
    executed = execute(path, timeout_s=60, env=env)
    assert executed.error is None, executed.error
    return executed.notebook.cells[0].outputs


def test_headless_kernel_gets_plain_text(tmp_path):
    outputs = _run(tmp_path, {"KIT_DISPLAY": ""})  # detection only: nbclient sends allow_stdin=False
    assert {o.output_type for o in outputs} == {"stream"}
    text = "".join(o.text for o in outputs)
    assert "alpha beta gamma delta" in text
    assert "first token" in text


def test_rich_display_is_updated_in_place_and_saved_with_the_final_text(tmp_path):
    outputs = _run(tmp_path, {"KIT_DISPLAY": "rich"})
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1, "one display, updated in place (not one output per redraw)"
    data = displays[0].data
    assert "alpha beta gamma delta" in data["text/markdown"]
    assert "alpha beta gamma delta" in data["text/plain"]
    assert "first token" in data["text/markdown"]
    assert not [o for o in outputs if o.output_type == "stream"]


def test_charts_are_saved_as_png_images(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "from helpers import compare\n"
        "comparison = compare(lambda: sum(range(1000)), lambda: sum(range(10)), labels=('a', 'b'))")]
    path = tmp_path / "chart.ipynb"
    nbformat.write(notebook, path)
    executed = execute(path, timeout_s=60)
    outputs = executed.notebook.cells[0].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs
    assert "b is" in "".join(o.get("text", "") for o in outputs)  # the printed ratio
