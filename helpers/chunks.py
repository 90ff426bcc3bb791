"""Read text and token usage out of any kind of stream chunk."""

from __future__ import annotations

from typing import Any


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def chunk_text(chunk: Any) -> str:
    """The text a chunk carries: LangChain message chunks, OpenAI SDK chunks, dicts or str."""
    if chunk is None:
        return ""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, bytes):
        return chunk.decode("utf-8", errors="replace")
    choices = _get(chunk, "choices")
    if choices:  # OpenAI chat.completion.chunk (object or dict)
        delta = _get(choices[0], "delta") or _get(choices[0], "message")
        text = _get(delta, "content") if delta is not None else _get(choices[0], "text")
        return text or ""
    content = _get(chunk, "content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b if isinstance(b, str) else str(_get(b, "text", "")) for b in content)
    return ""


def chunk_usage(chunk: Any) -> Any:
    """The usage data a chunk carries, as sent (LangChain's usage_metadata, else the OpenAI
    `usage`), or None."""
    return _get(chunk, "usage_metadata") or _get(chunk, "usage") or None


def chunk_output_tokens(chunk: Any) -> int | None:
    """Completion-token count if the chunk carries usage (the final usage chunk), else None."""
    usage = _get(chunk, "usage_metadata")
    if usage:
        value = _get(usage, "output_tokens")
        if value:
            return int(value)
    usage = _get(chunk, "usage")
    if usage:
        value = _get(usage, "completion_tokens")
        if value:
            return int(value)
    return None


def chunk_finish_reason(chunk: Any) -> str | None:
    """The finish_reason if this chunk carries one."""
    choices = _get(chunk, "choices")
    if choices:
        return _get(choices[0], "finish_reason")
    metadata = _get(chunk, "response_metadata") or {}
    return _get(metadata, "finish_reason")
