"""helpers.structured_stream: complete array elements out of JSON text that is still arriving."""

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from helpers.structured_stream import (
    JsonArrayItems,
    Skipped,
    array_schema,
    json_schema_format,
    stream_items,
    validate_item,
)


class Pick(BaseModel):
    product_id: int = Field(ge=1, le=10)
    reason: str


DOC = ('{"customer": "12345", "tags": ["a", "b"], "recommendations": ['
       '{"product_id": 1, "reason": "likes {Apple} and \\"quotes\\", [brackets]"}, '
       '{"product_id": 10, "reason": "reads sci-fi"}, {"product_id": 6, "reason": "yoga"}], '
       '"done": true}')


def pieces(text, size):
    return [text[i:i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 3, 7, len(DOC)])
def test_elements_of_the_keyed_array_whatever_the_chunking(size):
    extractor = JsonArrayItems(key="recommendations")
    found = [raw for piece in pieces(DOC, size) for raw in extractor.feed(piece)]
    assert [json.loads(raw)["product_id"] for raw in found] == [1, 10, 6]
    assert json.loads(found[0])["reason"] == 'likes {Apple} and "quotes", [brackets]'
    assert extractor.closed and extractor.completed == 3 and extractor.pending() == ""


def test_each_element_is_handed_out_at_its_closing_brace():
    extractor = JsonArrayItems(key="recommendations")
    first = DOC.index("}, ") + 1  # just after the first element's closing brace
    assert extractor.feed(DOC[: first - 1]) == []
    assert len(extractor.feed(DOC[first - 1: first])) == 1
    assert extractor.pending() == ""


def test_without_key_the_first_array_counts_and_scalars_work():
    extractor = JsonArrayItems()
    assert extractor.feed('{"tags": ["a", "b,c", 3, true, null]}') == ['"a"', '"b,c"', "3", "true", "null"]
    assert JsonArrayItems().feed("[[1, 2], [3]]") == ["[1, 2]", "[3]"]


def test_a_key_inside_a_string_or_a_nested_array_does_not_fool_it():
    text = '{"note": "recommendations: [1]", "other": [{"recommendations": 0}], "recommendations": [5]}'
    assert JsonArrayItems(key="recommendations").feed(text) == ["5"]


def test_text_after_the_array_is_ignored_and_pending_shows_a_cut_off_element():
    extractor = JsonArrayItems()
    assert extractor.feed('[1, 2] trailing [3]') == ["1", "2"]
    cut = JsonArrayItems()
    assert cut.feed('[{"a": 1}, {"a": 2, "b": "unfini') == ['{"a": 1}']
    assert cut.pending() == '{"a": 2, "b": "unfini' and not cut.closed


def test_validate_item_reports_json_and_schema_problems():
    assert validate_item('{"product_id": 3, "reason": "x"}', Pick) == Pick(product_id=3, reason="x")
    assert validate_item("[1, 2]") == [1, 2]
    with pytest.raises(ValueError, match="not valid JSON"):
        validate_item('{"product_id": 3,, }', Pick)
    with pytest.raises(ValueError, match="does not fit Pick.*product_id"):
        validate_item('{"product_id": 42, "reason": "x"}', Pick)


def test_stream_items_skips_broken_elements_with_a_note_and_goes_on(capsys):
    text = ('{"recommendations": [{"product_id": 2, "reason": "ok"}, {"product_id": 99, "reason": "no"},'
            ' {"product_id": 4 "reason": "bad json"}, {"product_id": 5, "reason": "fine"},'
            ' {"product_id": 7, "rea')
    items = list(stream_items(pieces(text, 5), Pick, key="recommendations"))
    assert [p.product_id for p in items] == [2, 5]
    notes = capsys.readouterr().out.splitlines()
    assert len(notes) == 3
    assert notes[0].startswith("⚠ skipped item 2: does not fit Pick")
    assert notes[1].startswith("⚠ skipped item 3: not valid JSON")
    assert notes[2].startswith("⚠ skipped unfinished item: the stream ended")


def test_stream_items_with_a_callback_and_no_array_at_all():
    skipped: list[Skipped] = []
    assert list(stream_items(["no json ", "here"], on_skip=skipped.append)) == []
    assert skipped and "no JSON array" in skipped[0].reason


def test_stream_items_is_lazy_and_closes_the_stream_when_stopped_early():
    pulled = []
    closed = []

    def source():
        try:
            text = '[{"product_id": 1, "reason": "a"}, {"product_id": 2, "reason": "b"}]'
            for i, piece in enumerate(pieces(text, 4)):
                pulled.append(i)
                yield piece
        finally:
            closed.append(True)

    gen = stream_items(source(), Pick)
    first = next(gen)
    assert first.product_id == 1
    assert len(pulled) < 12  # the first item came before the stream ended
    gen.close()
    assert closed == [True]


def test_stream_items_reads_chat_model_chunks():
    doc = '{"recommendations": [{"product_id": 3, "reason": "watch"}, {"product_id": 1, "reason": "mac"}]}'
    model = GenericFakeChatModel(messages=iter([AIMessage(content=doc)]))
    items = list(stream_items(model.stream("rank"), Pick, key="recommendations"))
    assert [p.product_id for p in items] == [3, 1]


def test_schemas_for_the_server():
    schema = array_schema(Pick, "recommendations", min_items=3, max_items=3)
    array = schema["properties"]["recommendations"]
    assert schema["required"] == ["recommendations"]
    assert array["minItems"] == 3 and array["maxItems"] == 3
    assert array["items"]["properties"]["product_id"]["maximum"] == 10
    fmt = json_schema_format(schema, name="recs")
    assert fmt == {"type": "json_schema", "json_schema": {"name": "recs", "schema": schema}}
    assert array_schema({"type": "integer"}, "ids")["properties"]["ids"] == {"type": "array",
                                                                             "items": {"type": "integer"}}
