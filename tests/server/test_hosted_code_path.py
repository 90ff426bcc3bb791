"""Notebooks 8 and 6 on the code path the hosted catalog takes, against real parts: KIT_BACKEND=hosted
points the notebook at the kit's RateLimitingProxy, in front of the real offline server, which
counts the model calls that reach it. On that path notebook 6 sends fewer prompts, so that run
top to bottom it stays under the catalog's limit of about 40 requests a minute (it has no retry
of its own: its retry lesson is section 5), and its 429 lesson still works as a deliberate demo.
Notebook 8 meets a catalog that refuses /v1/completions (whether the real one serves it for this
model is not verified): every section still measures, over the chat endpoint, and says so."""

from __future__ import annotations

import re
import uuid

import nbformat
import pytest

from helpers.fault_injection import RateLimitingProxy
from helpers.friendly_errors import HOSTED_REQUESTS_PER_MINUTE

from notebook_runner import assert_nothing_left_behind, execute
from support import REPO

pytestmark = pytest.mark.timeout(240, func_only=True)

NAME = "06_async_and_concurrency"


def run_through(catalog, name: str, capsys, how: str):
    """solutions/<name> run top to bottom on the hosted code path through `catalog` (started here,
    stopped at the end) and checked to run clean; and its process marker."""
    notebook = nbformat.read(REPO / "solutions" / f"{name}.ipynb", as_version=4)
    marker = f"kit-run-{uuid.uuid4().hex}"
    with catalog:
        executed = execute(notebook, timeout_s=180, workdir=REPO / "solutions",
                           env={"NIM_BASE_URL": catalog.base_url, "KIT_BACKEND": "hosted",
                                "NVIDIA_API_KEY": "stand-in-key", "KIT_DISPLAY": "plain",
                                "KIT_RUN_MARKER": marker})
    with capsys.disabled():
        print(f"\n⏱ solutions/{name}.ipynb {how} executed in {executed.seconds:.1f} s "
              f"({catalog.forwarded} model calls sent to the catalog)")
    assert executed.error is None, executed.error
    assert not executed.cells_with_errors()
    return executed, marker


def test_async_notebook_runs_on_the_hosted_code_path_under_the_catalogs_limit(offline_server, capsys):
    catalog = RateLimitingProxy(offline_server.base_url)
    executed, marker = run_through(catalog, NAME, capsys, "on the hosted code path")
    text = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    assert "Backend: NVIDIA's hosted API catalog" in text

    # fewer requests there: the whole notebook fits the catalog's minute
    assert catalog.rejected == 0 and catalog.forwarded < HOSTED_REQUESTS_PER_MINUTE, catalog.forwarded
    progress = executed.tagged_text("batch-progress")
    assert "Describe Florida" in progress and "Describe Oregon" not in progress, "three states there"

    # the sequential baseline and the cancelled task run there too, within the budget above
    assert "(ratio " in executed.tagged_text("gather-board")
    cancelled = executed.tagged_text("cancel")
    assert "task cancelled: True" in cancelled, cancelled
    # the catalog reports nothing of its servers' work: the watch says so rather than guess
    assert ("the model server after the cancel: this server does not report what it is doing "
            "(the hosted catalog keeps that to itself)") in cancelled, cancelled
    assert "(1 answered 429 by the proxy)" in executed.tagged_text("stream-fails")
    # the 429 lesson stays a deliberate demo: the plain batch raises, return_exceptions keeps the rest
    spared = executed.tagged_text("batch-exceptions")
    assert spared.startswith("without return_exceptions, the batch raised and kept no answer:"), spared
    counted = re.search(r"(\d) of 6 failed \(2 answered 429 by the proxy(?:, (\d) by the backend "
                        r"behind it)?\)", spared)
    assert counted, spared
    assert spared.count("✗ failed") == int(counted[1]) == 2 + int(counted[2] or 0)
    # the refused request is the proxy's 400, there as on every backend
    fanned = executed.tagged_text("fan-out")
    assert "✗ Exception: [400] Bad Request" in fanned, fanned
    assert "→ the limit held: 4 in flight with limit=4, 1 with limit=1" in fanned, fanned
    assert_nothing_left_behind(marker)


class CompletionsRefusingProxy(RateLimitingProxy):
    """The catalog as notebook 8 may meet it: POST /v1/completions answered 404 (counted in
    `refused`), everything else passed on as RateLimitingProxy does."""

    refused = 0

    def start(self) -> CompletionsRefusingProxy:
        super().start()
        proxy, relay = self, self._server.RequestHandlerClass

        class Refusing(relay):
            def _refuse_or_relay(self) -> None:
                if self.command == "POST" and self.path.rstrip("/").endswith("/v1/completions"):
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    proxy.refused += 1
                    return self.send_error(404, "Not Found", "no /v1/completions for this model")
                self._relay()

            do_GET = do_POST = _refuse_or_relay

        self._server.RequestHandlerClass = Refusing  # the server makes one handler per request
        return self


def test_batching_notebook_measures_over_chat_where_completions_is_refused(offline_server, capsys):
    catalog = CompletionsRefusingProxy(offline_server.base_url)
    executed, marker = run_through(catalog, "08_batching_in_a_service", capsys,
                                   "with /v1/completions refused")
    # one refused probe, then every call goes to the chat endpoint: the groups are measured there
    assert catalog.refused == 1, catalog.refused
    # no rounds in section 1; section 3's two rounds of four chat requests each way: under 30 calls,
    # well inside the catalog's minute
    assert catalog.forwarded < 30 < HOSTED_REQUESTS_PER_MINUTE, catalog.forwarded
    assert executed.tagged_text("completions-probe").strip() == (
        "✗ /v1/completions is refused for this model (HTTP 404): a group of prompts goes as one chat "
        "request per prompt")
    # nothing to compare in section 1: no rounds are sent, one line says why
    one_call = executed.tagged_text("one-call")
    assert one_call.strip() == ("→ nothing to compare: a group cannot be one call on this backend, only one "
                                "chat request per prompt"), one_call
    batched = executed.tagged_text("micro-batcher")
    assert "groups sent to the model: [2, 3]" in batched, batched
    assert len(re.findall(r"^The capital of \w+ is +group \d: first text after \d+\.\d+ s → \S",
                          batched, re.M)) == 5, batched
    # behind a limit per call, a group of chat requests is as many calls: the same refusals, each to its
    # own client while the rest of its group is answered; no saving, and it says so
    limited = executed.tagged_text("per-call-limit")
    alone, grouped = limited.split("── micro-batcher ──")
    assert "one call each: 5 model calls; the proxy passed on 2 and answered 3 with 429 → 2 of 5" in alone
    assert re.search(r"^micro-batcher: 5 model calls \(groups \[2, 3\]\); the proxy passed on 2 and "
                     r"answered 3 with 429 → 2 of 5 clients answered$", grouped, re.M), limited
    answered = re.findall(r"^The capital of (\w+) is +→ (['\"])\S.*\2$", grouped, re.M)
    refused = re.findall(r"^The capital of (\w+) is +✗ HTTP 429, Retry-After: \d+ s$", grouped, re.M)
    # the first group's two chat requests passed on; the second group's three, 0.15 s later, refused
    assert [state for state, _ in answered] == ["California", "Texas"], limited
    assert refused == ["Ohio", "Oregon", "Maine"], limited
    assert limited.rstrip().endswith("→ grouping saved 0 of 5 model calls: 2 of 5 clients answered, "
                                     "against 2 alone"), limited
    # section 3 measures there too: Ray's group is four chat requests, and so is the direct round's,
    # two rounds each way
    ray_answers = executed.tagged_text("ray-clients")
    assert len(re.findall(r"^round \d, (through Ray Serve|straight to the server) +first texts after "
                          r"\d+\.\d+, \d+\.\d+, \d+\.\d+, \d+\.\d+ s$", ray_answers, re.M)) == 4, ray_answers
    assert "→ first text through Ray Serve minus straight to the server: " in ray_answers, ray_answers
    assert "Ray processes left: 0" in executed.tagged_text("ray-stop")
    assert_nothing_left_behind(marker)
