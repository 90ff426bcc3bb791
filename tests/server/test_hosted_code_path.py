"""Notebook 8 on the code path the hosted catalog takes, against real parts: KIT_BACKEND=hosted
points the notebook at the kit's RateLimitingProxy, which refuses every 7th model call with HTTP
429 and a Retry-After (as a rate-limited API refuses some calls of a steady stream), in front of
the real offline server. On that path the notebook reads no server metrics and no slots, sends
fewer requests than the hosted catalog allows in a minute, retries what `llm` sent, counts the
sweep's refused requests as failures (never as time), and says what the sweep measures there."""

from __future__ import annotations

import re
import uuid

import nbformat
import pytest

from helpers.fault_injection import RateLimitingProxy
from helpers.rate_limits import HOSTED_REQUESTS_PER_MINUTE

from notebook_runner import assert_nothing_left_behind, execute, reported
from support import REPO

pytestmark = pytest.mark.timeout(240, func_only=True)

NAME = "08_async_and_concurrency"
EVERY = 7  # any 7 calls in a row hold a refused one: the sweep's 12 and `llm`'s first 11 do
MARK = "MEASURED "
# Appended to a copy of the notebook: reads the kernel's variables after the lesson ran.
REPORT = f"""
import json
print({MARK!r} + json.dumps({{
    "backend": settings.backend, "hosted": hosted, "slots": sweep.slots, "values": sweep.values,
    "runs_s": sweep.runs_s, "failed": sweep.failed, "peaks": sweep.peaks,
    "retry": {{"calls": retry.stats.calls, "answered": retry.stats.answered,
               "failed": retry.stats.failed, "rate_limited": retry.stats.rate_limited,
               "timed": len(retry.stats.answer_s),
               "failures": [type(f).__name__ for f in retry.stats.failures]}},
}}))
"""
SWEEP_ROW = re.compile(r"^\s+(\d+) \| (—|\d+\.\d+) \| (—|\d+\.\d+x) \| (\d+)$", re.M)


def test_async_notebook_runs_on_the_hosted_code_path_behind_a_rate_limit(offline_server, capsys):
    notebook = nbformat.read(REPO / "solutions" / f"{NAME}.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(REPORT, metadata={"tags": ["measurements"]}))
    marker = f"kit-run-{uuid.uuid4().hex}"
    with RateLimitingProxy(offline_server.base_url, reject_every=EVERY, retry_after_s=1) as catalog:
        executed = execute(notebook, timeout_s=180, workdir=REPO / "solutions",
                           env={"NIM_BASE_URL": catalog.base_url, "KIT_BACKEND": "hosted",
                                "NVIDIA_API_KEY": "stand-in-key", "KIT_DISPLAY": "plain",
                                "KIT_RUN_MARKER": marker})
    with capsys.disabled():
        print(f"\n⏱ solutions/{NAME}.ipynb on the hosted code path executed in {executed.seconds:.1f} s "
              f"({catalog.forwarded} model calls answered, {catalog.rejected} refused)")
    assert executed.error is None, executed.error
    assert not executed.cells_with_errors()
    measured = reported(executed, MARK)
    text = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    assert measured["backend"] == "hosted" and measured["hosted"] is True
    assert "Backend: NVIDIA's hosted API catalog" in text

    # fewer requests there: what the notebook sent, less `llm`'s retries, fits the catalog's minute
    stats = measured["retry"]
    sent = catalog.forwarded + catalog.rejected - stats["rate_limited"]
    assert sent < HOSTED_REQUESTS_PER_MINUTE, (catalog.forwarded, catalog.rejected, stats)
    assert catalog.rejected >= 2, "the rate limit was met"

    # the sweep: no slots, no server metrics, and it says what it measures there
    sweep = executed.tagged_text("sweep")
    assert measured["slots"] is None and measured["peaks"] == [None, None, None]
    assert "the server ran at once" not in sweep
    assert re.search(r"^batch's default thread pool here: \d+ threads$", sweep, re.M), sweep
    assert ("server slots: not reported → this sweep measured NVIDIA's shared fleet over the "
            "internet") in sweep, sweep
    # refused requests are failures, and the runs they were in have no time
    assert measured["values"] == [1, 2, 4]
    failed = measured["failed"]
    assert all(len(runs) == 1 for runs in failed), "one run per level on the hosted catalog"
    assert [len(times) for times in measured["runs_s"]] == [runs.count(0) for runs in failed]
    total = sum(map(sum, failed))
    assert total >= 1, "12 calls in a row, every 7th refused"
    rows = {int(v): (t, s, int(n)) for v, t, s, n in SWEEP_ROW.findall(sweep)}
    assert sorted(rows) == [1, 2, 4], sweep
    for level, runs in zip(measured["values"], failed, strict=True):
        time_shown, _, failed_shown = rows[level]
        assert failed_shown == runs[0] and (time_shown == "—") == (runs[0] > 0), sweep
    assert f"{total} request(s) failed: counted as failed" in sweep
    timed_levels = sum(1 for runs in failed if runs[0] == 0)
    verdict = sweep.rstrip().splitlines()[-1]
    assert verdict.startswith("fewer than two levels were timed") == (timed_levels < 2), sweep

    # `llm` waited out its 429s: up to section 6 every call was answered; in the end one failed,
    # the fan-out's too-long prompt (the offline server behind the stand-in reads 2,048 tokens),
    # counted as failed and never timed; no call gave up on a rate limit
    tally = re.search(r"this notebook's llm so far: (\d+) calls: (\d+) answered, 0 failed; "
                      r"HTTP 429 (\d+) times", executed.tagged_text("retry"))
    assert tally and tally[1] == tally[2] and int(tally[3]) >= 1, executed.tagged_text("retry")
    assert len(stats["failures"]) == 1 and "RateLimited" not in stats["failures"], stats
    assert stats["rate_limited"] >= int(tally[3])
    assert stats["answered"] + stats["failed"] == stats["calls"] and stats["timed"] == stats["answered"]
    assert "✗ The prompt is longer" in executed.tagged_text("fan-out")

    # the 429 lesson stays a deliberate demo: the plain batch raises, return_exceptions keeps the rest
    spared = executed.tagged_text("batch-exceptions")
    assert spared.startswith("without return_exceptions, the batch raised and kept no answer:"), spared
    counted = re.search(r"(\d) of 6 failed \(2 answered 429 by the proxy(?:, (\d) by the backend "
                        r"behind it)?\)", spared)
    assert counted, spared
    assert spared.count("✗ failed") == int(counted[1]) == 2 + int(counted[2] or 0)
    assert_nothing_left_behind(marker)
