"""Pull complete, validated items out of a JSON array while its text is still streaming.
(Notebook 5 writes the mechanism itself, `complete_items` and `stream_items`; this is the same,
reusable, with arrays of plain values and a note for the item a stream cut off.)

A model asked for `{"recommendations": [{...}, {...}, ...]}` sends that text a few characters at
a time. `JsonArrayItems` watches the characters go by and hands back each element of the array
the moment its closing bracket arrives; `stream_items` turns a chat stream into a generator of
validated items (pydantic models or dicts), skipping broken ones with a visible note.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .chunks import chunk_text
from .streaming import close_stream

_WHITESPACE = " \t\r\n"


class JsonArrayItems:
    """Incremental extractor for the elements of one JSON array.

    The array is the first one in the text, or with `key` the first one that is the value of
    that key. `feed(text)` returns the raw JSON text of every element that the new text
    completed; objects and arrays complete at their closing bracket, scalars at the next comma
    or at the array's end.
    """

    def __init__(self, key: str | None = None):
        self.key = key
        self.closed = False  # the target array has ended
        self.completed = 0  # elements handed out so far
        # before the array: enough structure to know which key an array belongs to
        self._outer: list[str] = []
        self._last_string: str | None = None
        self._current_key: str | None = None
        self._string_chars: list[str] | None = None
        # inside the array
        self._capturing = False
        self._item: list[str] = []
        self._level = 0  # nesting inside the current element
        self._in_string = False
        self._escaped = False

    @property
    def started(self) -> bool:
        """True once the target array has opened."""
        return self._capturing or self.closed

    def pending(self) -> str:
        """Text of an element begun but not finished (what a cut-off stream leaves behind)."""
        return "".join(self._item).strip()

    def feed(self, text: str) -> list[str]:
        found: list[str] = []
        for ch in text:
            if self.closed:
                break
            if self._capturing:
                self._inside(ch, found)
            else:
                self._outside(ch)
        return found

    def _emit(self, found: list[str]) -> None:
        raw = "".join(self._item).strip()
        self._item = []
        if raw:
            found.append(raw)
            self.completed += 1

    def _outside(self, ch: str) -> None:
        if self._string_chars is not None:  # inside a string (key or value) before the array
            if self._escaped:
                self._escaped = False
                self._string_chars.append(ch)
            elif ch == "\\":
                self._escaped = True
                self._string_chars.append(ch)
            elif ch == '"':
                self._last_string = "".join(self._string_chars)
                self._string_chars = None
            else:
                self._string_chars.append(ch)
        elif ch == '"':
            self._string_chars = []
        elif ch == ":":
            self._current_key = self._last_string
        elif ch == "[":
            in_object = bool(self._outer) and self._outer[-1] == "{"
            if self.key is None or (in_object and self._current_key == self.key):
                self._capturing = True
            else:
                self._outer.append("[")
        elif ch == "{":
            self._outer.append("{")
            self._current_key = None
        elif ch in "}]":
            if self._outer:
                self._outer.pop()
            self._current_key = None
        elif ch == ",":
            self._current_key = None

    def _inside(self, ch: str, found: list[str]) -> None:
        if self._in_string:
            self._item.append(ch)
            if self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == '"':
                self._in_string = False
            return
        if self._level == 0:  # between elements, or inside a scalar element
            if ch == ",":
                self._emit(found)
            elif ch == "]":
                self._emit(found)
                self._capturing = False
                self.closed = True
            elif ch in _WHITESPACE and not self._item:
                pass
            else:
                self._item.append(ch)
                if ch in "{[":
                    self._level = 1
                elif ch == '"':
                    self._in_string = True
            return
        self._item.append(ch)
        if ch == '"':
            self._in_string = True
        elif ch in "{[":
            self._level += 1
        elif ch in "}]":
            self._level -= 1
            if self._level == 0:
                self._emit(found)


@dataclass(frozen=True)
class Skipped:
    """An element that was not handed on, and why."""

    position: int  # 1-based place in the array (0: text left over after the stream ended)
    raw: str
    reason: str

    def note(self) -> str:
        where = f"item {self.position}" if self.position else "unfinished item"
        shown = self.raw if len(self.raw) <= 60 else self.raw[:57] + "…"
        return f"⚠ skipped {where}: {self.reason} — {shown}"


def print_note(skipped: Skipped) -> None:
    print(skipped.note(), flush=True)


def validate_item(raw: str, model: Any = None) -> Any:
    """Parse one element's JSON text; with a pydantic model, validate it. Raises ValueError."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if model is None:
        return data
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}"
                             for e in exc.errors())
        raise ValueError(f"does not fit {model.__name__} ({problems})") from None


def stream_items(chunks: Iterable[Any], model: Any = None, key: str | None = None,
                 on_skip: Callable[[Skipped], None] | None = print_note) -> Iterator[Any]:
    """Yield each element of the streamed JSON array as soon as it is complete and valid.

    `chunks` may be a chat stream (`llm.stream(...)`) or any iterable of text pieces. Elements
    that are not valid JSON or do not fit `model` are skipped: `on_skip` gets a `Skipped`
    (by default a printed note), and the stream goes on. Closing this generator early closes
    the underlying stream.
    """
    extractor = JsonArrayItems(key)
    try:
        for chunk in chunks:
            for raw in extractor.feed(chunk_text(chunk)):
                try:
                    item = validate_item(raw, model)
                except ValueError as exc:
                    if on_skip:
                        on_skip(Skipped(extractor.completed, raw, str(exc)))
                    continue
                yield item
    finally:
        close_stream(chunks)
    leftover = extractor.pending()
    if on_skip and leftover:
        on_skip(Skipped(0, leftover, "the stream ended before this item was complete"))
    elif on_skip and not extractor.started:
        on_skip(Skipped(0, "", "no JSON array arrived in the stream"))


def array_schema(item_schema: Any, key: str, min_items: int | None = None,
                 max_items: int | None = None) -> dict:
    """JSON schema of `{key: [item, ...]}`; `item_schema` is a dict or a pydantic model class."""
    if not isinstance(item_schema, dict):
        item_schema = item_schema.model_json_schema()
    array: dict[str, Any] = {"type": "array", "items": item_schema}
    if min_items is not None:
        array["minItems"] = min_items
    if max_items is not None:
        array["maxItems"] = max_items
    return {"type": "object", "properties": {key: array}, "required": [key]}


def json_schema_format(schema: dict, name: str = "response") -> dict:
    """The OpenAI-style `response_format` asking the server to follow `schema`.

    Pass it with `llm.bind(response_format=...)`. NIM, llama.cpp's server and the OpenAI API
    read it; the server then constrains generation so the text is valid JSON for the schema.
    """
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
