"""Fuzz the OTLP logs input of the bridge (``POST /v1/logs``): structured
requests in protobuf and JSON, byte mutations, random bytes.

Property: ``decode_logs_request`` raises nothing but ``MalformedOTLP``;
``read_logs_request`` raises nothing at all and accounts for every log
record (clicks + rejected + ignored = records); every record it returns
passes :func:`fuzz_support.check_record`, all-zero ids included (a click
emitted outside any span), so a click the bridge takes is one the receiver
accepts in both wire formats.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import Tracker
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, CLICK_ID
from agentsight_otel.server import otlp
from agentsight_otel.server.otlp_logs import decode_logs_request, read_logs_request
from tests.fuzz.fuzz_support import byte_mutations, check_record, fuzz_settings
from tests.fuzz.otlp_strategies import _ids, any_values, click_attributes, fill, proto_text


def _event_names() -> Any:
    return st.sampled_from([BUTTON_CLICK_EVENT, BUTTON_CLICK_EVENT, "", "", "other"])


@st.composite
def logs_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    """Log records as any sender might write them: clicks selected by
    ``event_name`` or by the attribute pair, broken clicks, other records."""
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_logs = request.resource_logs.add()
        for _ in range(draw(st.integers(0, 2))):
            kv = resource_logs.resource.attributes.add()
            kv.key = draw(proto_text)
            fill(kv.value, draw(any_values))
        for _ in range(draw(st.integers(1, 2))):
            scope_logs = resource_logs.scope_logs.add()
            for _ in range(draw(st.integers(1, 3))):
                log_record = scope_logs.log_records.add()
                log_record.event_name = draw(_event_names())
                log_record.trace_id = draw(st.one_of(st.just(b""), _ids(16)))
                log_record.span_id = draw(st.one_of(st.just(b""), _ids(8)))
                log_record.time_unix_nano = draw(
                    st.sampled_from([0, 1, 2**64 - 1, 1_700_000_000_000_000_000])
                )
                log_record.observed_time_unix_nano = draw(st.sampled_from([0, 1_700_000_000]))
                if draw(st.booleans()):
                    fill(log_record.body, draw(any_values))
                attributes = draw(click_attributes()) if draw(st.integers(0, 4)) else []
                if log_record.event_name == "" and draw(st.booleans()):
                    attributes.append((BUTTON_EVENT, ("s", "evt")))
                    attributes.append((CLICK_ID, ("s", draw(proto_text))))
                for key, tree in attributes:
                    kv = log_record.attributes.add()
                    kv.key = key
                    fill(kv.value, tree)
    return request


def _read(body: bytes, kind: str) -> None:
    try:
        request = decode_logs_request(body, kind)
    except otlp.MalformedOTLP:
        event("MalformedOTLP")
        return
    reading = read_logs_request(request)
    assert reading.rejected >= 0 and len(reading.reasons) <= 5
    assert all(isinstance(reason, str) and reason for reason in reading.reasons)
    assert len(reading.records) + reading.rejected + reading.without_clicks == reading.items
    event(f"records: {min(len(reading.records), 3)}, rejected: {min(reading.rejected, 3)}")
    for record in reading.records:
        check_record(record)


def _otlp_json(request: ExportLogsServiceRequest) -> bytes:
    from google.protobuf import json_format

    document = json_format.MessageToDict(request)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for log_record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if log_record.get(key):
                        log_record[key] = base64.b64decode(log_record[key]).hex()
    return json.dumps(document).encode()


def _sdk_body() -> bytes:
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    traces = TracerProvider()
    tracker = Tracker("conv-fuzz", tracer_provider=traces, signal="log_event", logger_provider=logs)
    with traces.get_tracer("fuzz").start_as_current_span("turn"):
        tracker.track_button("evt", "Label ✓", "v", metadata={"a.b": [1, None, {"c": []}]})
    tracker.track_button("evt", "Untraced", "w", metadata={"t": ["x", "y"], "n": 2.5})
    logs.get_logger("app").emit(body="not a click")
    return bytes(encode_logs(memory.get_finished_logs()).SerializeToString())


SDK_LOGS_BODY = _sdk_body()


def test_sdk_logs_request_gives_its_clicks() -> None:
    reading = read_logs_request(decode_logs_request(SDK_LOGS_BODY, otlp.PROTOBUF))
    assert (len(reading.records), reading.rejected, reading.without_clicks) == (2, 0, 1)
    for record in reading.records:
        check_record(record)


@fuzz_settings(2.0)
@given(logs_requests())
def test_structured_logs_requests(request: ExportLogsServiceRequest) -> None:
    _read(request.SerializeToString(), otlp.PROTOBUF)
    _read(_otlp_json(request), otlp.JSON)


@fuzz_settings(2.0)
@given(st.data())
def test_mutated_logs_requests(data: st.DataObject) -> None:
    body = data.draw(
        st.one_of(st.just(SDK_LOGS_BODY), logs_requests().map(lambda r: r.SerializeToString()))
    )
    _read(data.draw(byte_mutations(body)), otlp.PROTOBUF)


@fuzz_settings(1.0)
@given(st.binary(max_size=512))
def test_random_bytes_as_logs_protobuf(body: bytes) -> None:
    _read(body, otlp.PROTOBUF)
