"""otlp_logs.py: OTLP logs bodies (protobuf and JSON) to the same click
records as every other path, and the per-request bounds on logs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel.semconv import CLICK_ID
from agentsight_otel.server import otlp_bounds
from agentsight_otel.server.otlp import (
    JSON,
    PROTOBUF,
    MalformedOTLP,
    OTLPTooLarge,
    records_from_request,
)
from agentsight_otel.server.otlp_logs import (
    decode_logs_request,
    encode_logs_response,
    read_logs_request,
)
from agentsight_otel.wire.logs import compact_logs, records_from_log_clicks
from agentsight_otel.wire.records import ClickRecord
from agentsight_otel.wire.spans import records_from_spans
from tests.server.test_bridge_logs import otlp_json


def clicks_both_ways() -> tuple[Any, Any]:
    """Clicks recorded with ``signal="both"`` (one span event and one log
    record each, one click id), inside a span and outside any: the finished
    spans and the finished log records."""
    resource = Resource.create({"service.name": "both-ways"})
    spans = InMemorySpanExporter()
    traces = TracerProvider(resource=resource)
    traces.add_span_processor(SimpleSpanProcessor(spans))
    logs_memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(logs_memory))
    tracker = Tracker("conv-b", tracer_provider=traces, signal="both", logger_provider=logs)
    with traces.get_tracer("app").start_as_current_span("turn"):
        tracker.track_button(
            "evt", "Label ✓", "v", metadata={"a.b": [1, None, {"c": []}], "n": 2.5, "t": ["x"]}
        )
        tracker.track_button("evt", "Second", "w")
    return spans.get_finished_spans(), logs_memory.get_finished_logs()


def comparable(record: ClickRecord) -> tuple[Any, ...]:
    return (*record[:-2], dict(record.resource), record.metadata_text)


@pytest.mark.parametrize("kind", [PROTOBUF, JSON])
def test_a_click_log_record_is_the_same_record_as_its_span_event(kind: str) -> None:
    """The bridge's logs path, the log exporter's path (wire/logs.py) and the
    span event path give the same click records, ids and trace included."""
    spans, log_records = clicks_both_ways()
    from_spans, _ = records_from_spans(spans)
    found = compact_logs(log_records)
    assert found is not None
    from_exporter, refused = records_from_log_clicks([found[0]])
    request = encode_logs(log_records)
    body = request.SerializeToString() if kind == PROTOBUF else otlp_json(request)
    reading = read_logs_request(decode_logs_request(body, kind))
    assert (reading.rejected, reading.reasons, refused) == (0, [], [])
    assert len(reading.records) == 2
    expected = sorted(comparable(r) for r in from_spans)
    assert sorted(comparable(r) for r in reading.records) == expected
    assert sorted(comparable(r) for r in from_exporter) == expected
    assert reading.records[0].trace_id != "0" * 32


def _anonymous(log_records: Any) -> Any:
    request = encode_logs(log_records)
    for log_record in request.resource_logs[0].scope_logs[0].log_records:
        kept = [kv for kv in log_record.attributes if kv.key != CLICK_ID]
        del log_record.attributes[:]
        log_record.attributes.extend(kept)
    return request


def test_derived_click_ids_are_stable_distinct_and_differ_from_span_events() -> None:
    spans, log_records = clicks_both_ways()
    request = _anonymous(log_records)
    from_protobuf = read_logs_request(decode_logs_request(request.SerializeToString(), PROTOBUF))
    from_json = read_logs_request(decode_logs_request(otlp_json(request), JSON))
    ids = [r.click_id for r in from_protobuf.records]
    assert ids == [r.click_id for r in from_json.records]
    assert len(set(ids)) == 2 and all(len(i) == 32 and int(i, 16) for i in ids)
    # The span events of the same clicks, without ids, derive others: the
    # derivations are kept apart (server/derived_ids.py says why).
    span_request = encode_spans(spans)
    for event in span_request.resource_spans[0].scope_spans[0].spans[0].events:
        kept = [kv for kv in event.attributes if kv.key != CLICK_ID]
        del event.attributes[:]
        event.attributes.extend(kept)
    span_ids = {r.click_id for r in records_from_request(span_request)[0]}
    assert len(span_ids) == 2 and not span_ids & set(ids)
    # One attribute changed: another click, another id.
    request.resource_logs[0].scope_logs[0].log_records[0].attributes[0].value.string_value += "!"
    changed = read_logs_request(request).records
    assert changed[0].click_id != ids[0] and changed[1].click_id == ids[1]


def _one_click(change: Any) -> Any:
    _, log_records = clicks_both_ways()
    request = encode_logs(log_records)
    change(request.resource_logs[0].scope_logs[0].log_records[0])
    return read_logs_request(request)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: (r.ClearField("time_unix_nano"), r.ClearField("observed_time_unix_nano")),
         "neither time_unix_nano nor observed_time_unix_nano"),
        (lambda r: setattr(r, "trace_id", b"\x01" * 5), "trace_id is 5 bytes, not 16"),
        (lambda r: setattr(r, "span_id", b"\x01" * 9), "span_id is 9 bytes, not 8"),
    ],
)  # fmt: skip
def test_a_malformed_click_log_record_is_rejected_naming_the_field(
    change: Any, reason: str
) -> None:
    reading = _one_click(change)
    assert reading.rejected == 1 and reason in reading.reasons[0]
    assert [r.label for r in reading.records] == ["Second"]


def test_the_observed_time_stands_in_for_a_missing_time() -> None:
    reading = _one_click(lambda r: r.ClearField("time_unix_nano"))
    assert reading.rejected == 0
    assert reading.records[0].timestamp_ns > 0


def test_a_record_naming_another_event_is_ignored_whatever_it_carries() -> None:
    def rename(log_record: Any) -> None:
        log_record.event_name = "app.something_else"

    reading = _one_click(rename)
    assert (reading.items, reading.without_clicks, reading.rejected) == (2, 1, 0)
    assert [r.label for r in reading.records] == ["Second"]


def field(number: int, payload: bytes) -> bytes:
    out = bytearray([number << 3 | 2])
    size = len(payload)
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload


def logs_request_of(log_records: bytes) -> bytes:
    """ExportLogsServiceRequest > ResourceLogs > ScopeLogs > ``log_records``."""
    return field(1, field(2, log_records))


ATTRIBUTE = field(6, field(1, b"k" * 10) + field(2, field(1, b"v" * 10)))


@pytest.mark.parametrize(
    ("body", "what"),
    [
        # 70,000 empty log records, decoded unwalked, then counted
        (logs_request_of(field(2, b"") * 70_000), "log records"),
        # 1.1 million empty attributes on one record (walked)
        (logs_request_of(field(2, field(6, b"") * 1_100_000)), "attribute values"),
        # a body that is one array of 1.1 million values (walked)
        (logs_request_of(field(2, field(5, field(5, field(1, b"") * 1_100_000)))),
         "attribute values"),
        # 70,000 empty resource groups
        (field(1, b"") * 70_000, "resource and scope groups"),
    ],
)  # fmt: skip
def test_each_logs_bound_is_enforced_naming_it(body: bytes, what: str) -> None:
    with pytest.raises(OTLPTooLarge, match=f"more than [0-9,]+ {what}"):
        decode_logs_request(body, PROTOBUF)


def test_a_deeply_nested_log_body_is_bounded() -> None:
    value = b""
    for _ in range(60):  # AnyValue > ArrayValue > AnyValue ...
        value = field(5, field(1, value))
    padding = ATTRIBUTE * 200_000
    body = logs_request_of(field(2, padding + field(5, value)))
    assert otlp_bounds.message_upper_bound(body) > otlp_bounds.UNWALKED_MESSAGES
    with pytest.raises(OTLPTooLarge, match="nested deeper than 32 levels"):
        decode_logs_request(body, PROTOBUF)


def test_a_logs_body_the_walk_cannot_follow_is_400() -> None:
    body = logs_request_of(field(2, ATTRIBUTE * 200_000)) + b"\x0b"  # a start-group tag
    assert otlp_bounds.message_upper_bound(body) > otlp_bounds.UNWALKED_MESSAGES
    with pytest.raises(MalformedOTLP, match="ExportLogsServiceRequest") as caught:
        decode_logs_request(body, PROTOBUF)
    assert caught.value.status_code == 400


def test_an_honest_large_logs_body_is_walked_and_decoded() -> None:
    _, log_records = clicks_both_ways()
    body = encode_logs(log_records).SerializeToString() * 6_000
    assert otlp_bounds.message_upper_bound(body) > otlp_bounds.UNWALKED_MESSAGES
    reading = read_logs_request(decode_logs_request(body, PROTOBUF))
    assert len(reading.records) == 12_000 and reading.rejected == 0


@pytest.mark.parametrize("spelling", [b"resourceLogs", b"resource_logs"])
def test_json_log_records_are_counted_before_they_become_protobuf(spelling: bytes) -> None:
    records = b'{"timeUnixNano": "x"},' + b"{}," * 70_000 + b"{}"
    body = b'{"%s":[{"scopeLogs":[{"logRecords":[%s]}]}]}' % (spelling, records)
    with pytest.raises(OTLPTooLarge, match="more than 65,536 log records"):
        decode_logs_request(body, JSON)
    with pytest.raises(MalformedOTLP, match="timeUnixNano"):
        decode_logs_request(body.replace(b"{}," * 70_000, b""), JSON)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff",
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
        b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"spanId": "00"}]}]}]}',
        b"[1]",
    ],
)
def test_malformed_logs_bodies_are_refused_cleanly(body: bytes) -> None:
    kind = PROTOBUF if body.startswith(b"\xff") else JSON
    with pytest.raises(MalformedOTLP):
        decode_logs_request(body, kind)


def test_logs_responses_in_the_request_content_type() -> None:
    assert encode_logs_response(PROTOBUF) == b""
    document = json.loads(encode_logs_response(JSON, 1, "bad"))
    assert document == {"partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "bad"}}
    assert json.loads(encode_logs_response(JSON)) == {}
