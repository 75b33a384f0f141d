"""wire/: finished spans -> click records -> payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel._sdk import finished_events
from agentsight_otel.semconv import BUTTON_CLICK_EVENT
from agentsight_otel.wire.buttons import buttons_body
from agentsight_otel.wire.ingest import encode_ingest, ingest_span_id, metadata_json
from agentsight_otel.wire.records import (
    InvalidClick,
    record_from_event,
    record_from_json,
    record_to_json,
)
from agentsight_otel.wire.spans import count_clicks, records_from_spans
from agentsight_otel.wire.timestamps import delivery_timestamp, iso_timestamp
from tests.reference_payload import encode, ingest_payload
from tests.test_metadata import metadata_objects


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "agent-under-test"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter


def test_records_carry_click_trace_and_metadata() -> None:
    tp, exporter = provider()
    tracker = Tracker("conv-a", tracer_provider=tp)
    meta: dict[str, Any] = {"nested": {"list": [1, "x", None, {}]}, "a.b": []}
    with tp.get_tracer("t").start_as_current_span("turn") as turn:
        returned = tracker.track_button("evt", "Label", "val", metadata=meta)
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("no-clicks") as quiet:
        quiet.add_event("something.else", {"k": 1})
    records, rejected = records_from_spans(exporter.get_finished_spans())
    assert rejected == []
    [record] = records
    assert record.click_id == returned["click_id"]
    assert record.conversation_id == "conv-a"
    assert (record.button_event, record.label, record.value) == ("evt", "Label", "val")
    assert record.metadata == meta
    assert record.trace_id == f"{turn.get_span_context().trace_id:032x}"
    assert record.span_id == f"{turn.get_span_context().span_id:016x}"
    assert record.timestamp == returned["timestamp"]
    assert record.resource["service.name"] == "agent-under-test"
    assert record_from_json(record_to_json(record)) == record


def test_hand_written_bad_click_event_is_rejected_not_half_sent() -> None:
    tp, exporter = provider()
    with tp.get_tracer("t").start_as_current_span("turn") as span:
        span.add_event(BUTTON_CLICK_EVENT, {"agentsight.button_event": "e"})
        span.add_event(
            BUTTON_CLICK_EVENT,
            {
                "agentsight.button_event": "e",
                "agentsight.button_label": "l",
                "agentsight.button_value": "v",
                "agentsight.conversation_id": "c",
                "agentsight.click_id": "id-1",
                "agentsight.metadata.a": 1,
                "agentsight.metadata.a.b": 2,
            },
        )
    records, rejected = records_from_spans(exporter.get_finished_spans())
    assert records == []
    assert len(rejected) == 2
    assert "missing or blank" in rejected[0]
    assert "metadata" in rejected[1]


_FIELDS = (
    "agentsight.click_id",
    "agentsight.button_event",
    "agentsight.button_label",
    "agentsight.button_value",
    "agentsight.conversation_id",
)


def _event(**changes: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {name: f"ok-{i}" for i, name in enumerate(_FIELDS)}
    attributes["agentsight.metadata.k"] = 1
    attributes.update({f"agentsight.{k}": v for k, v in changes.items()})
    return attributes


# The common case is decided by one test (ASCII, first character past the
# space); these sit on either side of it and must get the careful answer.
@pytest.mark.parametrize("field", [name.split(".", 1)[1] for name in _FIELDS])
@pytest.mark.parametrize(
    "text", [" leading space", "\ttab first", "\x01control first", "caf\u00e9", "\u3000x", "!"]
)
def test_text_fields_off_the_fast_path_are_still_accepted(field: str, text: str) -> None:
    record = record_from_event(_event(**{field: text}), 1, "0" * 32, "0" * 16, {})
    assert record[_FIELDS.index(f"agentsight.{field}")] == text
    assert record.metadata == {"k": 1}


@pytest.mark.parametrize("field", [name.split(".", 1)[1] for name in _FIELDS])
@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        ("", "missing or blank"),
        (" ", "missing or blank"),
        ("\t\n\x0b\x0c\r\x1c", "missing or blank"),
        ("\u3000\u2003", "missing or blank"),
        (None, "missing or blank"),
        (7, "missing or blank"),
        ("ok\ud800", "not valid Unicode"),
        ("\udfffok", "not valid Unicode"),
    ],
)
def test_bad_text_fields_are_named(field: str, bad: Any, rule: str) -> None:
    with pytest.raises(InvalidClick, match=rule) as caught:
        record_from_event(_event(**{field: bad}), 1, "0" * 32, "0" * 16, {})
    assert f"agentsight.{field}" in str(caught.value)


@pytest.mark.parametrize(
    ("click_id", "span_id"),
    [
        ("c271a982b4399a8d0000000000000026", "e44b86b0b595b521"),
        ("id-1", "5aaebc19545226d2"),
        ("caf\u00e9-\u2603", "605d64d199634ae4"),
    ],
)
def test_ingest_span_id_derivation_never_changes(click_id: str, span_id: str) -> None:
    # Spooled clicks are redelivered by later versions: the span id the
    # backend de-duplicates on must be the one an earlier version sent.
    assert ingest_span_id(click_id) == span_id
    assert ingest_span_id(click_id) == span_id  # the shared hash state is not consumed


def test_ingest_payload_groups_by_conversation_in_time_order() -> None:
    tp, exporter = provider()
    with tp.get_tracer("t").start_as_current_span("turn"):
        for conversation, label in [("c1", "a"), ("c2", "b"), ("c1", "c")]:
            Tracker(conversation, tracer_provider=tp).track_button("evt", label, "v")
    records, _ = records_from_spans(exporter.get_finished_spans())
    payload = ingest_payload(records, environment="staging")
    assert payload["sdk"]["name"] == "agentsight-otel"
    blocks = payload["conversations"]
    assert [b["conversation_id"] for b in blocks] == ["c1", "c2"]
    assert [s["name"] for s in blocks[0]["spans"]] == ["a", "c"]
    assert all(b["environment"] == "staging" for b in blocks)
    span = blocks[1]["spans"][0]
    record = records[1]
    assert span["span_id"] == ingest_span_id(record.click_id)
    assert span["span_id"] != record.span_id and len(span["span_id"]) == 16
    # AgentSight never receives the application span: no dangling parent,
    # the link back to the trace is an attribute (issue 12 item 20).
    assert span["parent_span_id"] is None
    assert span["attributes"]["agentsight.otel.parent_span_id"] == record.span_id
    assert span["trace_id"] == record.trace_id
    assert span["kind"] == "button"
    assert span["attributes"]["agentsight.button.click_id"] == record.click_id
    assert span["started_at"] == span["ended_at"] == record.timestamp
    # Stable across retries: the same click always gets the same span id.
    assert ingest_payload(records)["conversations"][1]["spans"][0]["span_id"] == span["span_id"]


def test_buttons_body_is_exactly_the_documented_fields() -> None:
    tp, exporter = provider()
    Tracker("c9", tracer_provider=tp).track_button("evt", "L", "V", metadata={"k": "v"})
    [record], _ = records_from_spans(exporter.get_finished_spans())
    body = buttons_body(record)
    assert set(body) == {
        "timestamp",
        "button_event",
        "label",
        "value",
        "conversation_id",
        "metadata",
    }
    assert body["metadata"]["k"] == "v"
    assert body["metadata"]["_agentsight"] == {
        "click_id": record.click_id,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
    }
    assert record.metadata == {"k": "v"}  # the record itself is not modified


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**18), 4 * 10**18), min_size=1, max_size=12))
def test_fast_encoder_writes_each_click_time_as_iso_timestamp(stamps: list[int]) -> None:
    # The batch encoder keeps its own per-second cache; the caller thread's
    # (iso_timestamp's) is moved to another second between the two reads.
    tp, exporter = provider()
    Tracker("c", tracer_provider=tp).track_button("evt", "Label", "v")
    [record] = records_from_spans(exporter.get_finished_spans())[0]
    records = [record._replace(timestamp_ns=at) for at in stamps]
    iso_timestamp(0)
    body = json.loads(encode_ingest(records))
    written = [span["started_at"] for span in body["conversations"][0]["spans"]]
    assert written == [iso_timestamp(at) for at in sorted(stamps)]
    assert json.loads(encode(ingest_payload(records))) == body


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c1", "c2", "ç-3", 'quote"d']),
            st.text(min_size=1, max_size=10).filter(lambda t: t.strip() != ""),
            metadata_objects,
        ),
        min_size=1,
        max_size=8,
    ),
    st.one_of(st.none(), st.sampled_from(["production", "dev\u00e9"])),
)
def test_fast_encoder_writes_exactly_the_payload(
    clicks: list[tuple[str, str, dict[str, Any]]], environment: str | None
) -> None:
    tp, exporter = provider()
    for conversation, label, meta in clicks:
        Tracker(conversation, tracer_provider=tp).track_button("evt", label, "v", metadata=meta)
    records, rejected = records_from_spans(exporter.get_finished_spans())
    assert not rejected and len(records) == len(clicks)
    assert json.loads(encode_ingest(records, environment)) == json.loads(
        encode(ingest_payload(records, environment))
    )
    for record in records:  # and the metadata string is 0.1.4's json.dumps, to the byte
        if record.metadata:
            assert metadata_json(record.metadata) == json.dumps(record.metadata, ensure_ascii=False)


def test_spool_rows_written_before_metadata_text_still_encode_the_same() -> None:
    # Spools written by 0.1.0 hold ten fields per record (no metadata text).
    tp, exporter = provider()
    Tracker("conv", tracer_provider=tp).track_button(
        "evt", "Label", "v", metadata={"plan": "pro", "seats": 3, "nested": {"x": [1.5]}}
    )
    [record] = records_from_spans(exporter.get_finished_spans())[0]
    assert record.metadata_text == json.dumps(record.metadata, ensure_ascii=False)
    old_row = json.dumps(json.loads(record_to_json(record))[:10])
    older = record_from_json(old_row)
    assert older.metadata_text is None
    assert encode_ingest([older], "production") == encode_ingest([record], "production")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "\ud800 lone surrogate"])
def test_a_resource_json_cannot_carry_is_sent_empty_not_fatal(bad: Any) -> None:
    tp, exporter = provider()
    Tracker("conv", tracer_provider=tp).track_button("evt", "Label", "v")
    [record] = records_from_spans(exporter.get_finished_spans())[0]
    record = record._replace(resource={"service.name": "svc", "odd": bad})
    body = json.loads(encode_ingest([record]))
    [span] = body["conversations"][0]["spans"]
    assert span["otel"]["resource"] == {}
    assert span["attributes"]["agentsight.button.click_id"] == record.click_id
    assert json.loads(encode(ingest_payload([record]))) == body  # the reference agrees
    assert json.loads(encode(ingest_payload([record]))) == body  # the reference agrees


def test_finished_events_reads_what_the_public_property_gives() -> None:
    from opentelemetry.sdk.trace import Event, ReadableSpan

    tp, exporter = provider()
    tracer = tp.get_tracer("t")
    live = tracer.start_span("turn")
    live.add_event("app.step")
    Tracker("c", tracer_provider=tp).track_button("e", "l", "v")  # no current span: own span
    with tracer.start_as_current_span("turn") as current:
        current.add_event("app.step")
        Tracker("c", tracer_provider=tp).track_button("e", "l", "v")
        Tracker("c", tracer_provider=tp).track_button("e", "l", "v2")
    # A live span may still change: the public property (a copy) is read.
    assert type(finished_events(live)) is tuple
    assert count_clicks(live) == 0
    live.end()
    ended = exporter.get_finished_spans()
    assert [count_clicks(span) for span in ended] == [1, 2, 0]
    for span in ended:
        assert tuple(finished_events(span)) == span.events
    # Not the SDK's Span: its own events, through the public property.
    events = (Event("agentsight.button_click", {}), Event("other", {}))
    plain = ReadableSpan("plain", events=events)
    assert finished_events(plain) == events
    assert count_clicks(plain) == 1


def test_recording_and_delivery_format_timestamps_alike_from_separate_caches() -> None:
    # The encoder formats clicks seconds old while the application records
    # clicks of this second: with one cache each would evict the other's
    # second on every call, putting the date formatting back on the caller.
    now = 1_795_000_000_123_456_789
    old = now - 7_000_000_000
    assert iso_timestamp(now) == delivery_timestamp(now) == "2026-11-18T11:06:40.123456+00:00"
    assert delivery_timestamp(old) == iso_timestamp(old)
    iso_timestamp(now)
    delivery_timestamp(old)
    [recording_cache] = [
        c.cell_contents
        for c in iso_timestamp.__closure__ or ()
        if isinstance(c.cell_contents, list)
    ]
    [delivery_cache] = [
        c.cell_contents
        for c in delivery_timestamp.__closure__ or ()
        if isinstance(c.cell_contents, list)
    ]
    assert recording_cache[0] == now // 1_000_000_000
    assert delivery_cache[0] == old // 1_000_000_000
