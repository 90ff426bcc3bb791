"""Rows for what the lessons rely on and a server may lack: answers that follow a JSON schema,
cached prompt tokens reported, and Stop seen by the server.

Each row makes real calls through the `ChatNVIDIA` it is given. Cached tokens not reported is a
warning, not a failure: the lessons must hold without that report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from helpers.latency import cached_tokens
from helpers.server_activity import server_after_stop
from helpers.settings import ConnectionSettings
from helpers.streaming import close_stream
from helpers.structured_stream import json_schema_format

from .table import Check, call_failed, error_text, failed, passed, skipped, warned

# The prompt does not name the key: only a server that applies the schema answers with it.
SCHEMA_KEY = "kit_city"
SCHEMA = {"type": "object", "properties": {SCHEMA_KEY: {"type": "string", "maxLength": 40}},
          "required": [SCHEMA_KEY], "additionalProperties": False}
SCHEMA_PROMPT = "What is the capital of Texas?"
SCHEMA_TOKENS = 60
# About 250 prompt tokens: servers cache whole blocks of tokens, and this spans several.
CACHE_PROMPT = ("A river delta forms where a river meets still water. " * 20
                + "In one word: what forms where a river meets still water?")
MIN_CACHED_SHARE = 0.5  # of the repeated prompt's tokens
STOP_PROMPT = "Write a long essay about the history of bread."
STOP_TOKENS = 400  # long enough to outlast the watch at a NIM's ~200 tokens/s
STOP_AFTER_CHUNKS = 3
STOP_WATCH_S = 1.5


# --- structured output -------------------------------------------------------------------------

@dataclass(frozen=True)
class SchemaAnswer:
    """How one structured call went: `value` of the key when the schema held, else why not."""

    value: str | None = None
    problem: str | None = None

    @property
    def followed(self) -> bool:
        return self.value is not None

    def describe(self) -> str:
        return f'{{"{SCHEMA_KEY}": {json.dumps(self.value)}}}' if self.followed else self.problem


def read_schema_answer(text: str) -> SchemaAnswer:
    """Whether `text` is a JSON object with a non-empty string under the schema's key."""
    try:
        data = json.loads(text.strip())
    except ValueError:
        return SchemaAnswer(problem=f"free text: {text.strip()[:40]!r}")
    value = data.get(SCHEMA_KEY) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        return SchemaAnswer(problem=f"JSON without the key {SCHEMA_KEY!r}")
    return SchemaAnswer(value=value)


def schema_call(llm, **kwargs) -> SchemaAnswer:
    try:
        answer = llm.invoke(SCHEMA_PROMPT, max_completion_tokens=SCHEMA_TOKENS, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a rejection is what this call finds out
        return SchemaAnswer(problem=f"rejected ({error_text(exc, 60)})")
    return read_schema_answer(str(answer.content))


def schema_verdict(openai_style: SchemaAnswer, nvext: SchemaAnswer | None) -> Check:
    """response_format must hold; NIM 1.x documents nvext.guided_json instead, which the client
    warns an older NIM may need (it ignores response_format and answers free text, HTTP 200)."""
    measured = f"response_format json_schema → {openai_style.describe()}"
    if openai_style.followed:
        return passed("structured", measured)
    measured += f"; nvext.guided_json → {nvext.describe()}" if nvext else ""
    if nvext is not None and nvext.followed:
        return warned("structured", measured,
                      "This server ignores response_format but follows nvext.guided_json (NIM "
                      "1.x): structured cells must send nvext={'guided_json': schema} here.")
    return failed("structured", measured,
                  "The server does not apply a JSON schema: notebook 05's structured answers "
                  "will be free text. Use a server release that supports response_format.")


def check_structured_output(llm) -> Check:
    openai_style = schema_call(llm, response_format=json_schema_format(SCHEMA))
    nvext = None if openai_style.followed else schema_call(llm, nvext={"guided_json": SCHEMA})
    return schema_verdict(openai_style, nvext)


# --- cached prompt tokens ----------------------------------------------------------------------

def prompt_usage(llm) -> tuple[int | None, int | None]:
    """(prompt tokens, cached prompt tokens) of one call of the cache prompt."""
    answer = llm.invoke(CACHE_PROMPT, max_completion_tokens=1)
    usage = answer.response_metadata.get("token_usage") or {}
    return usage.get("prompt_tokens"), cached_tokens(usage)


def cache_verdict(first: int | None, repeat: int | None, prompt_tokens: int | None) -> Check:
    """The repeat must come mostly from the cache; not reported, or not reused, is a warning."""
    if repeat is None:
        return warned("cached tokens", "not reported (usage.prompt_tokens_details.cached_tokens)",
                      "The lessons then rest on the TTFT difference alone (which may be none). "
                      "The hosted catalog never reports it.")
    measured = f"repeat: {repeat} of {prompt_tokens or '?'} prompt tokens cached (first: {first})"
    if prompt_tokens and repeat >= MIN_CACHED_SHARE * prompt_tokens:
        return passed("cached tokens", measured)
    return warned("cached tokens", measured,
                  "The server did not reuse the repeated prompt. On a NIM set "
                  "NIM_ENABLE_KV_CACHE_REUSE=1 (docker-compose.yml does).")


def check_cached_tokens(llm, settings: ConnectionSettings) -> Check:
    if settings.backend == "hosted":
        return skipped("cached tokens", "the hosted catalog reports none")
    try:
        _, first = prompt_usage(llm)
        prompt_tokens, repeat = prompt_usage(llm)
    except Exception as exc:  # noqa: BLE001 - any failure is this row's finding
        return call_failed("cached tokens", exc, settings.base_url, settings.model)
    return cache_verdict(first, repeat, prompt_tokens)


# --- Stop seen by the server ---------------------------------------------------------------------

def stop_early(llm) -> int:
    """Open a long answer's stream, read a few chunks, close it; returns the chunks read
    (fewer than STOP_AFTER_CHUNKS: the answer ended by itself)."""
    stream = llm.stream(STOP_PROMPT, max_completion_tokens=STOP_TOKENS)
    read = 0
    try:
        for _ in stream:
            read += 1
            if read >= STOP_AFTER_CHUNKS:
                break
    finally:
        close_stream(stream)
    return read


def stop_verdict(read: int, after) -> Check:
    """`after` is what `server_after_stop` saw once the stream was closed."""
    if read < STOP_AFTER_CHUNKS:
        return failed("Stop seen", f"the answer ended after {read} chunks, before Stop",
                      "A long answer ended at once: nothing was left to stop. See the server's log.")
    caveat = getattr(after, "caveat", None)  # other users, or counters from several replicas
    if after.stopped is None and caveat:
        return warned("Stop seen", f"no verdict: {caveat}",
                      "Run the pre-flight while nobody else uses this server, against one replica.")
    if after.stopped is None:
        return skipped("Stop seen", "the server does not report what it is doing")
    tokens = after.tokens_generated
    later = f"+{tokens:.0f} tokens in a {after.seconds:.1f} s watch" if tokens is not None else ""
    if after.stopped:
        return passed("Stop seen", f"stream closed after {read} chunks; the server stopped: "
                                   f"{later or 'no request running'}")
    return failed("Stop seen", f"stream closed after {read} chunks; the server went on: "
                               f"{later or 'still running a request'}",
                  "Something between the notebooks and the server (a proxy, a gateway) does not "
                  "pass a closed connection on: Stop and hang-up lessons will show it generating.")


def check_stop_seen(llm, settings: ConnectionSettings) -> Check:
    if settings.backend == "hosted":
        return skipped("Stop seen", "the hosted catalog reports no activity")
    try:
        read = stop_early(llm)
    except Exception as exc:  # noqa: BLE001
        return call_failed("Stop seen", exc, settings.base_url, settings.model)
    return stop_verdict(read, server_after_stop(settings, seconds=STOP_WATCH_S))
