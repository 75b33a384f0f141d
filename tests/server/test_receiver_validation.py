"""Every validation rule of both write endpoints, table-driven, over real HTTP.

Each case breaks exactly one rule of an otherwise valid body and names the
field the 400 must point at. Nothing of a rejected request may be stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

import pytest

from agentsight_otel import semconv
from agentsight_otel.server import validation

if TYPE_CHECKING:
    from tests.server.conftest import Wire

CORRELATION = semconv.BUTTONS_CORRELATION_KEY


def _without(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        del body[name]

    return edit


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        body[name] = value

    return edit


def _set_correlation(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        body["metadata"][CORRELATION][name] = value

    return edit


BUTTONS_CASES = [
    *(
        pytest.param(_without(name), name, id=f"missing-{name}")
        for name in validation.BUTTONS_REQUIRED
    ),
    *(
        pytest.param(_set(name, "  "), name, id=f"blank-{name}")
        for name in validation.BUTTONS_REQUIRED
    ),
    *(
        pytest.param(_set(name, ""), name, id=f"empty-{name}")
        for name in validation.BUTTONS_REQUIRED
    ),
    *(
        pytest.param(_set(name, None), name, id=f"null-{name}")
        for name in validation.BUTTONS_REQUIRED
    ),
    *(
        pytest.param(_set(name, 7), name, id=f"number-{name}")
        for name in validation.BUTTONS_REQUIRED
    ),
    pytest.param(_set("timestamp", "yesterday"), "timestamp", id="timestamp-not-iso"),
    pytest.param(_set("timestamp", "2025-13-01T00:00:00Z"), "timestamp", id="timestamp-bad-month"),
    pytest.param(_set("metadata", []), "metadata", id="metadata-list"),
    pytest.param(_set("metadata", "{}"), "metadata", id="metadata-string"),
    pytest.param(
        _set("metadata", {CORRELATION: "x"}), f"metadata.{CORRELATION}", id="correlation-not-object"
    ),
    pytest.param(
        _set_correlation("click_id", ""), f"metadata.{CORRELATION}.click_id", id="blank-click-id"
    ),
    pytest.param(
        _set_correlation("trace_id", "abc"), f"metadata.{CORRELATION}.trace_id", id="short-trace-id"
    ),
    pytest.param(
        _set_correlation("trace_id", "A" * 32),
        f"metadata.{CORRELATION}.trace_id",
        id="uppercase-trace-id",
    ),
    pytest.param(
        _set_correlation("span_id", "0" * 16), f"metadata.{CORRELATION}.span_id", id="zero-span-id"
    ),
    pytest.param(
        _set_correlation("span_id", "g" * 16), f"metadata.{CORRELATION}.span_id", id="non-hex-span"
    ),
]


@pytest.mark.parametrize(("edit", "field"), BUTTONS_CASES)
def test_buttons_rejects(wire: Wire, edit: Callable[[dict[str, Any]], None], field: str) -> None:
    body = wire.button_body()
    edit(body)

    response = wire.post_buttons(body)

    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["detail"]
    assert field in answer["errors"], answer
    assert all(isinstance(m, str) and m for m in answer["errors"][field])
    assert wire.count() == 0


@pytest.mark.parametrize("body", [[], "click", 3, None], ids=["list", "string", "number", "null"])
def test_buttons_rejects_a_body_that_is_not_an_object(wire: Wire, body: object) -> None:
    headers = {**wire.auth, "Content-Type": "application/json"}
    response = wire.post_raw("/api/buttons/", json.dumps(body), headers)
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["errors"]


def test_buttons_names_every_bad_field_at_once(wire: Wire) -> None:
    response = wire.post_buttons({"metadata": []})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {*validation.BUTTONS_REQUIRED, "metadata"}


# --- ingest ----------------------------------------------------------------


def _span_edit(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def edit(block: dict[str, Any]) -> None:
        span = block["spans"][0]
        for key, value in changes.items():
            if value is _DELETE:
                del span[key]
            else:
                span[key] = value

    return edit


def _attr_edit(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(block: dict[str, Any]) -> None:
        attributes = block["spans"][0]["attributes"]
        if value is _DELETE:
            del attributes[name]
        else:
            attributes[name] = value

    return edit


def _block_edit(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(block: dict[str, Any]) -> None:
        if value is _DELETE:
            del block[name]
        else:
            block[name] = value

    return edit


_DELETE = object()


def _attr(name: str) -> str:
    return f"spans[0].attributes[{name}]"


INGEST_CASES = [
    pytest.param(_block_edit("conversation_id", _DELETE), "conversation_id", id="no-conv-id"),
    pytest.param(_block_edit("conversation_id", " "), "conversation_id", id="blank-conv-id"),
    pytest.param(_block_edit("conversation_id", 12), "conversation_id", id="numeric-conv-id"),
    pytest.param(_block_edit("spans", _DELETE), "spans", id="no-spans"),
    pytest.param(_block_edit("spans", {"0": {}}), "spans", id="spans-not-a-list"),
    pytest.param(_block_edit("metadata", "x"), "metadata", id="block-metadata-string"),
    pytest.param(_block_edit("environment", "staging"), "environment", id="unknown-environment"),
    pytest.param(_block_edit("spans", ["x"]), "spans[0]", id="span-not-object"),
    pytest.param(_span_edit(span_id="abc"), "spans[0].span_id", id="short-span-id"),
    pytest.param(_span_edit(span_id="0" * 16), "spans[0].span_id", id="zero-span-id"),
    pytest.param(_span_edit(span_id="ABCDEF0123456789"), "spans[0].span_id", id="upper-span-id"),
    pytest.param(_span_edit(span_id=_DELETE), "spans[0].span_id", id="missing-span-id"),
    pytest.param(_span_edit(trace_id="f" * 31), "spans[0].trace_id", id="short-trace-id"),
    pytest.param(_span_edit(trace_id="0" * 32), "spans[0].trace_id", id="zero-trace-id"),
    pytest.param(_span_edit(trace_id=123), "spans[0].trace_id", id="numeric-trace-id"),
    pytest.param(_span_edit(parent_span_id="z" * 16), "spans[0].parent_span_id", id="bad-parent"),
    pytest.param(_span_edit(kind=_DELETE), "spans[0].kind", id="missing-kind"),
    pytest.param(_span_edit(kind=""), "spans[0].kind", id="blank-kind"),
    pytest.param(_span_edit(attributes=[]), "spans[0].attributes", id="attributes-list"),
    pytest.param(_span_edit(events={}), "spans[0].events", id="events-object"),
    pytest.param(_span_edit(started_at=_DELETE), "spans[0].started_at", id="click-no-start"),
    pytest.param(_span_edit(started_at="soon"), "spans[0].started_at", id="bad-started-at"),
    pytest.param(_span_edit(ended_at="later"), "spans[0].ended_at", id="bad-ended-at"),
    *(
        pytest.param(_attr_edit(name, value), _attr(name), id=f"{label}-{name}")
        for name in validation.INGEST_BUTTON_REQUIRED
        for label, value in (("missing", _DELETE), ("blank", " "), ("null", None), ("number", 1))
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_CLICK_ID, ""), _attr(semconv.INGEST_CLICK_ID), id="blank-click-id"
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_METADATA, {"a": 1}),
        _attr(semconv.INGEST_METADATA),
        id="metadata-object-not-string",
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_METADATA, "{not json"),
        _attr(semconv.INGEST_METADATA),
        id="metadata-invalid-json",
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_METADATA, "[1, 2]"),
        _attr(semconv.INGEST_METADATA),
        id="metadata-json-list",
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_METADATA, '{"a": NaN}'),
        _attr(semconv.INGEST_METADATA),
        id="metadata-nan",
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_METADATA, "[" * 40 + "]" * 40),
        _attr(semconv.INGEST_METADATA),
        id="metadata-too-deep",
    ),
    pytest.param(
        _attr_edit(semconv.INGEST_CONVERSATION_ID, "another-conversation"),
        _attr(semconv.INGEST_CONVERSATION_ID),
        id="span-names-another-conversation",
    ),
]


@pytest.mark.parametrize(("edit", "field"), INGEST_CASES)
def test_ingest_rejects_the_whole_batch_and_names_the_block(
    wire: Wire, edit: Callable[[dict[str, Any]], None], field: str
) -> None:
    good = wire.block("good-conversation", wire.button_span(), wire.button_span())
    bad = wire.block("bad-conversation", wire.button_span())
    edit(bad)
    payload = wire.payload(good, bad)

    response = wire.post_ingest(payload)

    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["detail"]
    [entry] = answer["conversations"]
    assert entry["index"] == 1
    raw_id = bad.get("conversation_id")
    assert entry["conversation_id"] == (raw_id if isinstance(raw_id, str) else None)
    assert field in entry["errors"], entry
    assert all(isinstance(m, str) and m for m in entry["errors"][field])
    # All or nothing: the good block was not stored either.
    assert wire.count() == 0


def test_ingest_names_every_offending_block(wire: Wire) -> None:
    blocks = [wire.block(f"c{i}", wire.button_span()) for i in range(6)]
    blocks[1]["conversation_id"] = ""
    blocks[3]["spans"] = "nope"
    blocks[4]["spans"][0]["trace_id"] = "short"
    blocks[4]["spans"].append(wire.button_span(span_id="bad"))

    response = wire.post_ingest(wire.payload(*blocks))

    assert response.status_code == 400
    entries = response.json()["conversations"]
    assert [e["index"] for e in entries] == [1, 3, 4]
    assert [e["conversation_id"] for e in entries] == ["", "c3", "c4"]
    assert set(entries[2]["errors"]) == {"spans[0].trace_id", "spans[1].span_id"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"sdk": {}}, "conversations", id="no-conversations"),
        pytest.param({"conversations": {}}, "conversations", id="conversations-object"),
        pytest.param({"conversations": [], "sdk": "x"}, "sdk", id="sdk-string"),
        pytest.param([], "non_field_errors", id="body-list"),
    ],
)
def test_ingest_rejects_a_malformed_envelope(wire: Wire, payload: object, field: str) -> None:
    response = wire.post_ingest(payload)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_non_button_span_needs_no_button_attributes(wire: Wire) -> None:
    response = wire.post_ingest(wire.payload(wire.block("c", wire.other_span())))
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "clicks_stored": 0,
        "duplicates": 0,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }


# --- the schema route agrees with the block-by-block one ----------------------


def _valid_block(wire: Wire) -> dict[str, Any]:
    return wire.block(
        "c",
        wire.button_span(),
        wire.other_span(),
        wire.button_span(parent_span_id=None, ended_at=None),
        wire.button_span(attributes={semconv.INGEST_METADATA: ' {"a": [1, {"b": null}]} '}),
    )


def _body(block: dict[str, Any]) -> bytes:
    return json.dumps({"conversations": [block]}).encode()


def test_schema_route_builds_the_same_rows_as_the_block_by_block_route(wire: Wire) -> None:
    """Bytes take the msgspec schema in one pass; a parsed body is checked per
    block (to name every bad one). Both must make the same rows."""
    block = _valid_block(wire)
    from_bytes = validation.read_ingest(_body(block))
    from_parsed = validation.ingest_clicks(json.loads(_body(block)))
    assert from_bytes == from_parsed
    assert len(from_bytes.clicks) == 3


@pytest.mark.parametrize(("edit", "field"), INGEST_CASES)
def test_schema_route_refuses_what_the_block_by_block_route_refuses(
    wire: Wire, edit: Callable[[dict[str, Any]], None], field: str
) -> None:
    block = _valid_block(wire)
    edit(block)
    block = json.loads(json.dumps(block))
    with pytest.raises(validation.ValidationFailed) as from_bytes:
        validation.read_ingest(_body(block))
    with pytest.raises(validation.ValidationFailed) as from_parsed:
        validation.ingest_clicks({"conversations": [block]})
    assert from_bytes.value.body == from_parsed.value.body
    [entry] = from_bytes.value.body["conversations"]
    assert field in entry["errors"], entry


def test_type_errors_name_the_json_path_msgspec_reports(wire: Wire) -> None:
    block = _valid_block(wire)
    block["spans"][2]["kind"] = 7
    with pytest.raises(validation.ValidationFailed) as caught:
        validation.read_ingest(_body(block))
    [entry] = caught.value.body["conversations"]
    assert entry["errors"] == {"spans[2].kind": ["Expected `str`, got `int`."]}
