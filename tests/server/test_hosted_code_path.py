"""Notebook 8 on the code path the hosted catalog takes, against real parts: KIT_BACKEND=hosted
points the notebook at the kit's RateLimitingProxy, in front of the real offline server, which
counts the model calls that reach it. On that path the notebook sends fewer prompts, so that run
top to bottom it stays under the catalog's limit of about 40 requests a minute (it has no retry
of its own: its retry lesson is section 5), and its 429 lesson still works as a deliberate demo."""

from __future__ import annotations

import re
import uuid

import nbformat
import pytest

from helpers.fault_injection import RateLimitingProxy
from helpers.rate_limits import HOSTED_REQUESTS_PER_MINUTE

from notebook_runner import assert_nothing_left_behind, execute
from support import REPO

pytestmark = pytest.mark.timeout(240, func_only=True)

NAME = "08_async_and_concurrency"


def test_async_notebook_runs_on_the_hosted_code_path_under_the_catalogs_limit(offline_server, capsys):
    notebook = nbformat.read(REPO / "solutions" / f"{NAME}.ipynb", as_version=4)
    marker = f"kit-run-{uuid.uuid4().hex}"
    with RateLimitingProxy(offline_server.base_url) as catalog:
        executed = execute(notebook, timeout_s=180, workdir=REPO / "solutions",
                           env={"NIM_BASE_URL": catalog.base_url, "KIT_BACKEND": "hosted",
                                "NVIDIA_API_KEY": "stand-in-key", "KIT_DISPLAY": "plain",
                                "KIT_RUN_MARKER": marker})
    with capsys.disabled():
        print(f"\n⏱ solutions/{NAME}.ipynb on the hosted code path executed in {executed.seconds:.1f} s "
              f"({catalog.forwarded} model calls sent to the catalog)")
    assert executed.error is None, executed.error
    assert not executed.cells_with_errors()
    text = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    assert "Backend: NVIDIA's hosted API catalog" in text

    # fewer requests there: the whole notebook fits the catalog's minute
    assert catalog.rejected == 0 and catalog.forwarded < HOSTED_REQUESTS_PER_MINUTE, catalog.forwarded
    progress = executed.tagged_text("batch-progress")
    assert "Describe Florida" in progress and "Describe Oregon" not in progress, "three states there"

    # the 429 lesson stays a deliberate demo: the plain batch raises, return_exceptions keeps the rest
    spared = executed.tagged_text("batch-exceptions")
    assert spared.startswith("without return_exceptions, the batch raised and kept no answer:"), spared
    counted = re.search(r"(\d) of 6 failed \(2 answered 429 by the proxy(?:, (\d) by the backend "
                        r"behind it)?\)", spared)
    assert counted, spared
    assert spared.count("✗ failed") == int(counted[1]) == 2 + int(counted[2] or 0)
    assert "✗ The prompt is longer" in executed.tagged_text("fan-out")
    assert_nothing_left_behind(marker)
