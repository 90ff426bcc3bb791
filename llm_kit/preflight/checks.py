"""The checks: does this backend do everything the notebooks rely on?

Each check makes real calls through `ChatNVIDIA`, constructed as the notebooks construct it, and
returns one row. NIM figures for comparison are from NVIDIA's NIM benchmark for
llama-3.1-8b-instruct 1.8.0 (time to first token about 10 ms for one user; five users get 5.0x
one user's tokens/s at the same inter-token latency).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from helpers.readiness import check_ready, served_models
from helpers.server_activity import RequestPeak
from helpers.server_metrics import ServerMetrics, busy_slots, read_metrics
from helpers.settings import ConnectionSettings, chat_model
from helpers.streaming import StreamResult, stream_print
from helpers.timing import compare, time_call

from .lessons import check_cached_tokens, check_stop_seen, check_structured_output
from .table import Check, call_failed, error_text, failed, passed, skipped

STATES = ("California", "Texas", "New York", "Florida", "Illinois", "Ohio")
QUESTIONS = [f"What is the capital of {state}?" for state in STATES]  # notebook 02's batch
LONG_PROMPT = "Write about 100 words on how a river delta forms."
CAP = 8  # tokens: the per-call answer cap under test
TTFT_TOKENS = 40  # answer length for the time-to-first-token measurement
MIN_BATCH_SPEEDUP = 1.2  # a server that answers one request at a time measures about 1.0
MAX_TTFT_SHARE = 0.5  # the first token must arrive well before the whole answer
NIM_TTFT_MS = 10
NIM_BATCH_SPEEDUP = 5
NEEDS_READY = "needs a ready server"


def notebook_llm(settings: ConnectionSettings, answer_cap: int | None = None):
    """`ChatNVIDIA` as the notebooks construct it (the settings' answer cap unless one is given)."""
    cap = answer_cap or settings.max_answer_tokens
    fields = {"max_completion_tokens": cap} if cap else {}
    return chat_model(settings, temperature=0, **fields)


def _call_failed(name: str, exc: BaseException, settings: ConnectionSettings) -> Check:
    return call_failed(name, exc, settings.base_url, settings.model)


# --- the server ------------------------------------------------------------------------------

READINESS_FIXES = {
    "unreachable": ("Nothing answers at {root}. A NIM that is still downloading or loading has no "
                    "HTTP server yet: `docker compose logs -f llama`. Offline: `make server`."),
    "loading": "The server is up but its model is still loading (503): wait, then run again.",
    "no-key": "Set NVIDIA_API_KEY=nvapi-… in .env or your shell (never in a notebook).",
    "wrong-url": "Something else answers at {root}: NIM_BASE_URL must be the server's URL ending in /v1.",
}


def check_readiness(settings: ConnectionSettings) -> Check:
    readiness, seconds = time_call(lambda: check_ready(settings))
    if readiness.state in ("ready", "wrong-model"):  # up; the model id is the next row's business
        where = readiness.detail.removeprefix(settings.server_root) if readiness.ready else "health"
        return passed("readiness", f"{where or 'health'} → 200 in {seconds * 1000:.0f} ms")
    fix = READINESS_FIXES.get(readiness.state, "See the server's log, then run again.")
    return failed("readiness", f"{readiness.state}: {readiness.detail}",
                  fix.format(root=settings.server_root))


def check_model_listed(settings: ConnectionSettings) -> Check:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    with httpx.Client(timeout=10, headers=headers) as client:
        served = served_models(client, settings)
    if settings.model in served:
        return passed("model id", f"{settings.model} in /v1/models")
    if not served:
        return failed("model id", "/v1/models lists no model",
                      f"The server at {settings.base_url} cannot say what it serves: check NIM_BASE_URL.")
    listed = ", ".join(served[:3]) + (" …" if len(served) > 3 else "")
    return failed("model id", f"{settings.model} not served; /v1/models lists {listed}",
                  f"Set NIM_MODEL={served[0]} (in .env or the shell), or serve {settings.model}.")


# --- the calls the notebooks make ------------------------------------------------------------

def check_invoke(llm, settings: ConnectionSettings) -> Check:
    try:
        answer, seconds = time_call(lambda: llm.invoke(QUESTIONS[1]))
    except Exception as exc:  # noqa: BLE001 - any failure is this row's finding
        return _call_failed("invoke", exc, settings)
    tokens = (answer.usage_metadata or {}).get("output_tokens")
    if not str(answer.content).strip():
        return failed("invoke", "empty answer", "The server returned no text: see its log.")
    return passed("invoke", f"{tokens or '?'} tokens in {seconds:.2f} s")


def check_stream(llm, settings: ConnectionSettings) -> tuple[Check, Check]:
    """The stream row and the usage-chunk row (from the same stream)."""
    result = stream_print(llm.stream(QUESTIONS[1]), display="none")
    if result.error is not None:
        return (_call_failed("stream", result.error, settings),
                skipped("usage chunk", "needs a working stream"))
    if result.content_chunks < 2:
        stream = failed("stream", f"{result.content_chunks} text chunks",
                        "The answer arrived in one piece: the server does not stream.")
    else:
        stream = passed("stream", f"{result.content_chunks} text chunks over {result.total_s:.2f} s, "
                                  f"first after {result.ttft_s:.2f} s")
    return stream, usage_row(result)


def usage_row(result: StreamResult) -> Check:
    if result.output_tokens is not None:
        return passed("usage chunk", f"stream ends with usage: {result.output_tokens} output tokens")
    return failed("usage chunk", "no chunk carried usage (stream_options.include_usage)",
                  "The server drops the usage chunk: notebook 03's usage chunk and streamed token "
                  "counts will be missing. Use a server release that sends it.")


def check_batch(llm, settings: ConnectionSettings) -> Check:
    try:
        answers, seconds = time_call(lambda: llm.batch(QUESTIONS))
    except Exception as exc:  # noqa: BLE001
        return _call_failed("batch", exc, settings)
    empty = sum(not str(answer.content).strip() for answer in answers)
    if len(answers) != len(QUESTIONS) or empty:
        return failed("batch", f"{len(answers)} answers, {empty} empty", "See the server's log.")
    return passed("batch", f"{len(answers)} answers in {seconds:.2f} s")


@dataclass(frozen=True)
class CapResult:
    """One capped call: completion tokens and finish reason, or why it failed."""

    tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None

    @property
    def honoured(self) -> bool:
        return self.error is None and self.tokens is not None and self.tokens <= CAP

    def describe(self) -> str:
        if self.error:
            return f"rejected ({self.error})"
        return f"{self.tokens} tokens ({self.finish_reason})"


def capped_call(llm, **kwargs) -> CapResult:
    try:
        answer = llm.invoke(LONG_PROMPT, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a rejection is what this call finds out
        return CapResult(error=error_text(exc, 60))
    tokens = (answer.usage_metadata or {}).get("output_tokens")
    return CapResult(tokens=tokens, finish_reason=answer.response_metadata.get("finish_reason"))


def cap_verdict(per_call: CapResult, constructor: CapResult) -> Check:
    """ChatNVIDIA sends a per-call cap as `max_completion_tokens` (next to the constructor's
    `max_tokens`), and the constructor's cap as `max_tokens`. Both must hold."""
    measured = (f"max_completion_tokens={CAP}: {per_call.describe()}; "
                f"max_tokens={CAP}: {constructor.describe()}")
    if per_call.honoured and constructor.honoured:
        return passed("answer cap", measured)
    if constructor.honoured:
        return failed("answer cap", measured,
                      "Per-call caps (max_completion_tokens=…) do not hold here: cap answers in the "
                      "constructor, ChatNVIDIA(max_completion_tokens=N), which sends max_tokens.")
    if per_call.honoured:
        return failed("answer cap", measured,
                      "The constructor's cap (sent as max_tokens) does not hold: pass the cap per "
                      "call, llm.invoke(…, max_completion_tokens=N).")
    return failed("answer cap", measured, "Neither cap holds: answers run to the model's limit.")


def check_answer_cap(llm, settings: ConnectionSettings) -> Check:
    per_call = capped_call(llm, max_completion_tokens=CAP)
    constructor = capped_call(notebook_llm(settings, answer_cap=CAP))
    return cap_verdict(per_call, constructor)


# --- what the server reports, and how fast ---------------------------------------------------

def check_metrics(settings: ConnectionSettings, before: ServerMetrics | None) -> Check:
    if settings.backend == "hosted":
        return skipped("server metrics", "the hosted catalog publishes none")
    after = read_metrics(settings)
    if after is None or after.tokens_generated_total is None or after.requests_running is None:
        return failed("server metrics", "no tokens-generated / requests-running metrics",
                      f"The lessons read {settings.server_root}/metrics (llama.cpp) or /v1/metrics "
                      "(NIM: generation_tokens_total, num_requests_running). Offline: restart the "
                      "server (`make stop server`).")
    start = before.tokens_generated_total if before and before.tokens_generated_total else 0.0
    generated = after.tokens_generated_total - start
    slots = busy_slots(settings)
    slot_text = f", {slots} busy slots" if slots is not None else ""
    path = after.source.removeprefix(settings.server_root)
    if generated <= 0:
        return failed("server metrics", f"{path}: token counter did not move",
                      "The server's counters do not follow its work: check its version.")
    return passed("server metrics", f"{path}: +{generated:.0f} tokens generated, "
                                    f"{after.requests_running:.0f} running{slot_text}")


def batch_verdict(ratio: float, peak: int | None, measured: str) -> Check:
    """Batch works when the server runs its requests side by side: seen in the timing, or in the
    server's own counters (robust on a busy CPU, where the timing is noise). The ratio is the
    figure either way."""
    if ratio >= MIN_BATCH_SPEEDUP or (peak is not None and peak >= 2):
        return passed("batch vs loop", measured)
    return failed("batch vs loop", measured,
                  "The server works on one request at a time: the batching lessons will show no "
                  "gain. Offline: `llm-kit server start --parallel 6`; on a NIM, check that nothing "
                  "else loads the GPU.")


def check_batch_speedup(llm, settings: ConnectionSettings, rounds: int) -> Check:
    try:
        with RequestPeak(settings) as peak_seen:
            comparison = compare(lambda: [llm.invoke(q) for q in QUESTIONS],
                                 lambda: llm.batch(QUESTIONS), labels=("invoke loop", "batch"),
                                 repeats=rounds, plot=False, verbose=False)
    except Exception as exc:  # noqa: BLE001
        return _call_failed("batch vs loop", exc, settings)
    (loop_s, batch_s), ratio = comparison.medians_s, comparison.ratio
    peak = peak_seen.value
    median = f" (median of {rounds})" if rounds > 1 else ""
    side_by_side = f"; the server ran up to {peak} at once" if peak is not None else ""
    measured = (f"{len(QUESTIONS)} questions: loop {loop_s:.2f} s, batch {batch_s:.2f} s → "
                f"{ratio:.1f}x{median}{side_by_side}; a NIM: ~{NIM_BATCH_SPEEDUP}x")
    return batch_verdict(ratio, peak, measured)


def check_ttft(settings: ConnectionSettings) -> Check:
    result = stream_print(notebook_llm(settings, answer_cap=TTFT_TOKENS).stream(LONG_PROMPT),
                          display="none")
    if result.error is not None or result.ttft_s is None:
        return _call_failed("TTFT", result.error or RuntimeError("no text arrived"), settings)
    share = result.ttft_s / result.total_s if result.total_s else 1.0
    tokens = result.output_tokens or result.content_chunks
    measured = (f"first token {result.ttft_s:.2f} s of {result.total_s:.2f} s ({tokens} tokens); "
                f"a NIM: ~{NIM_TTFT_MS} ms")
    if share <= MAX_TTFT_SHARE:
        return passed("TTFT", measured)
    return failed("TTFT", measured,
                  "The first token comes late in the answer: streaming will not look faster than "
                  "invoke. Check what else loads the server.")


def run_checks(settings: ConnectionSettings, rounds: int = 3) -> list[Check]:
    """Every backend row, in table order (the cache-volume row is added by the caller)."""
    ready = check_readiness(settings)
    later = ["model id", "invoke", "stream", "usage chunk", "batch", "answer cap", "structured",
             "cached tokens", "server metrics", "Stop seen", "batch vs loop", "TTFT"]
    if ready.failed:
        return [ready, *(skipped(name, NEEDS_READY) for name in later)]
    before = read_metrics(settings) if settings.backend != "hosted" else None
    llm = notebook_llm(settings)
    rows = [ready, check_model_listed(settings), check_invoke(llm, settings),
            *check_stream(llm, settings), check_batch(llm, settings),
            check_answer_cap(llm, settings), check_structured_output(llm),
            check_cached_tokens(llm, settings), check_metrics(settings, before),
            check_stop_seen(llm, settings)]
    if rounds < 1:
        rows += [skipped(name, "not measured (--rounds 0)") for name in ("batch vs loop", "TTFT")]
    else:
        rows += [check_batch_speedup(llm, settings, rounds), check_ttft(settings)]
    return rows
