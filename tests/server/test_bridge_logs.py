"""The bridge's ``POST /v1/logs`` over real HTTP: click log records from the
stock OTLP log exporter (real SDK LoggerProvider) to the real receiver."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import requests
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import TrackedClick, Tracker
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, BUTTON_LABEL, CLICK_ID
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge, stored
from tests.server.test_bridge import PB

JSON_HEADERS = {"Content-Type": "application/json"}


def logs_url(bridge: Bridge) -> str:
    return bridge.url.replace("/v1/traces", "/v1/logs")


def application_logs() -> tuple[Any, list[TrackedClick]]:
    """Three click log records (``Tracker(signal="log_event")``, each in an
    agent turn's span) and two that are not clicks, as an application's SDK
    emits them; with what ``track_button`` returned for each click."""
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logs = LoggerProvider(resource=Resource.create({"service.name": "bridge-logs-app"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    traces = TracerProvider()
    tracer = traces.get_tracer("app")
    app_logger = logs.get_logger("app")
    sent = []
    for n in range(3):
        with tracer.start_as_current_span(f"turn-{n}"):
            tracker = Tracker(
                f"conv-{n % 2}", tracer_provider=traces, signal="log_event", logger_provider=logs
            )
            sent.append(
                tracker.track_button(
                    "contact_human_agent",
                    f"Button {n}",
                    f"v{n}",
                    metadata={"n": n, "tags": ["a", "b"]},
                )
            )
            app_logger.emit(body=f"turn {n} answered", attributes={"http.status": 200})
    # Another event that happens to carry a click's attributes is not a click.
    app_logger.emit(
        event_name="app.other_event",
        attributes={BUTTON_EVENT: "x", CLICK_ID: "0" * 31 + "1"},
    )
    return memory.get_finished_logs(), sent


def assert_delivered(receiver: ReceiverHandle, bridge: Bridge, sent: list[TrackedClick]) -> None:
    assert bridge.exporter.force_flush(10_000)
    clicks = stored(receiver)
    assert set(clicks) == {s["click_id"] for s in sent}
    for s in sent:
        click = clicks[s["click_id"]]
        # The trace the click happened in, from the log record's own ids.
        assert (click["trace_id"], click["span_id"]) == (s["trace_id"], s["span_id"])
        assert click["label"] == s["label"]
        assert click["metadata"] == {"n": int(s["value"][1:]), "tags": ["a", "b"]}


def otlp_json(request: Any) -> bytes:
    """OTLP/JSON as the specification writes it: lowerCamelCase, hex ids."""
    document = json_format.MessageToDict(request)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId") and value:
                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(document)
    return json.dumps(document).encode()


def rejected_of(response: requests.Response) -> Any:
    answer = ExportLogsServiceResponse()
    answer.ParseFromString(response.content)
    return answer.partial_success


def status_of(response: requests.Response) -> Any:
    status = status_pb2.Status()
    status.ParseFromString(response.content)
    return status


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_stock_otlp_log_exporter_delivers_clicks_with_their_trace(
    receiver: ReceiverHandle, bridge: Bridge, compression: Compression
) -> None:
    records, sent = application_logs()
    exporter = OTLPLogExporter(endpoint=logs_url(bridge), compression=compression)
    assert exporter.export(records).name == "SUCCESS"
    assert_delivered(receiver, bridge, sent)
    stats = bridge.stats
    assert (stats["log_records"], stats["clicks"], stats["log_records_without_clicks"]) == (7, 3, 4)
    assert stats["rejected_log_records"] == 0


@pytest.mark.parametrize("gzipped", [False, True])
def test_otlp_json_logs(receiver: ReceiverHandle, bridge: Bridge, gzipped: bool) -> None:
    records, sent = application_logs()
    body = otlp_json(encode_logs(records))
    headers = dict(JSON_HEADERS)
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    response = requests.post(logs_url(bridge), data=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    assert_delivered(receiver, bridge, sent)


def _request_with(records: Any, change: Any) -> ExportLogsServiceRequest:
    request = encode_logs(records)
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for log_record in scope_logs.log_records:
                change(log_record)
    return request


def test_partial_success_names_the_malformed_click(
    receiver: ReceiverHandle, bridge: Bridge
) -> None:
    records, sent = application_logs()

    def blank_the_second_label(log_record: Any) -> None:
        for kv in log_record.attributes:
            if kv.key == BUTTON_LABEL and kv.value.string_value == "Button 1":
                kv.value.string_value = " "

    body = _request_with(records, blank_the_second_label).SerializeToString()
    response = requests.post(logs_url(bridge), data=body, headers=PB, timeout=10)
    assert response.status_code == 200
    partial = rejected_of(response)
    assert partial.rejected_log_records == 1
    assert BUTTON_LABEL in partial.error_message
    assert bridge.exporter.force_flush(10_000)
    assert set(stored(receiver)) == {sent[0]["click_id"], sent[2]["click_id"]}
    assert bridge.stats["rejected_log_records"] == 1


def test_a_resent_request_is_stored_once_with_or_without_click_ids(
    receiver: ReceiverHandle, bridge: Bridge
) -> None:
    """Another language's SDK may send no ``agentsight.click_id``: the bridge
    derives one from the record, the same for protobuf and JSON, so a
    Collector's retry stores each click once."""
    records, sent = application_logs()

    def without_click_id(log_record: Any) -> None:
        if log_record.event_name == BUTTON_CLICK_EVENT:
            kept = [kv for kv in log_record.attributes if kv.key != CLICK_ID]
            del log_record.attributes[:]
            log_record.attributes.extend(kept)

    with_ids = encode_logs(records).SerializeToString()
    anonymous = _request_with(records, without_click_id)
    for _ in range(2):
        for body, headers in (
            (with_ids, PB),
            (anonymous.SerializeToString(), PB),
            (otlp_json(anonymous), JSON_HEADERS),
        ):
            response = requests.post(logs_url(bridge), data=body, headers=headers, timeout=10)
            assert response.status_code == 200
    assert bridge.exporter.force_flush(10_000)
    assert bridge.stats["clicks"] == 3 * 3 * 2
    assert receiver.store.count_clicks() == 2 * len(sent)  # with their ids, and derived ones
    derived = set(stored(receiver)) - {s["click_id"] for s in sent}
    assert len(derived) == 3 and all(len(i) == 32 for i in derived)


def test_a_click_outside_any_span_is_accepted(receiver: ReceiverHandle, bridge: Bridge) -> None:
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    sent = Tracker("conv-0", signal="log_event", logger_provider=logs).track_button(
        "contact_human_agent", "Untraced", "u"
    )
    request = encode_logs(memory.get_finished_logs())
    assert not any(request.resource_logs[0].scope_logs[0].log_records[0].trace_id)
    response = requests.post(
        logs_url(bridge), data=request.SerializeToString(), headers=PB, timeout=10
    )
    assert response.status_code == 200 and not rejected_of(response).rejected_log_records
    assert bridge.exporter.force_flush(10_000)
    assert stored(receiver)[sent["click_id"]]["label"] == "Untraced"


def test_event_name_or_the_attribute_pair_selects_clicks(
    receiver: ReceiverHandle, bridge: Bridge
) -> None:
    """SDKs without ``event_name`` send it empty: such a record is a click
    when it carries both attributes the rule names."""
    records, sent = application_logs()

    def forget_event_name(log_record: Any) -> None:
        if log_record.event_name == BUTTON_CLICK_EVENT:
            log_record.event_name = ""

    body = _request_with(records, forget_event_name).SerializeToString()
    response = requests.post(logs_url(bridge), data=body, headers=PB, timeout=10)
    assert response.status_code == 200
    assert_delivered(receiver, bridge, sent)
    assert bridge.stats["log_records_without_clicks"] == 4


def test_only_other_log_records_are_ignored_not_rejected(
    receiver: ReceiverHandle, bridge: Bridge
) -> None:
    records, _ = application_logs()
    others = [r for r in records if r.log_record.event_name != BUTTON_CLICK_EVENT]
    assert len(others) == 4
    body = encode_logs(others).SerializeToString()
    response = requests.post(logs_url(bridge), data=body, headers=PB, timeout=10)
    assert response.status_code == 200
    assert not rejected_of(response).rejected_log_records
    assert bridge.stats["log_records_without_clicks"] == 4 and bridge.stats["clicks"] == 0
    assert bridge.exporter.force_flush(10_000)
    assert receiver.store.count_clicks() == 0


def _field(number: int, payload: bytes) -> bytes:
    out = bytearray([number << 3 | 2])
    size = len(payload)
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload


@pytest.mark.parametrize("count", [70_000, 2_000_000])
def test_too_many_log_records_get_413_naming_the_limit(bridge: Bridge, count: int) -> None:
    """Empty log records, two bytes each: counted on the wire before decoding
    (2 million are past the size decoded unwalked, so they are walked)."""
    body = gzip.compress(_field(1, _field(2, _field(2, b"") * count)))
    response = requests.post(
        logs_url(bridge), data=body, headers={**PB, "Content-Encoding": "gzip"}, timeout=60
    )
    assert response.status_code == 413
    assert "more than 65,536 log records" in status_of(response).message
    assert bridge.stats["requests"] == 0


def test_too_many_json_log_records_get_413(bridge: Bridge) -> None:
    records = b"{}," * 70_000 + b"{}"
    body = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[%s]}]}]}' % records
    response = requests.post(logs_url(bridge), data=body, headers=JSON_HEADERS, timeout=60)
    assert response.status_code == 413
    assert "more than 65,536 log records" in response.json()["message"]


def test_token_is_required_for_logs(receiver: ReceiverHandle, tmp_path: Path) -> None:
    guarded = Bridge(receiver, tmp_path / "guarded.sqlite3", token="s3cret")
    try:
        records, sent = application_logs()
        body = encode_logs(records).SerializeToString()
        url = logs_url(guarded)
        assert requests.post(url, data=body, headers=PB, timeout=10).status_code == 401
        wrong = {**PB, "Authorization": "Bearer nope"}
        assert requests.post(url, data=body, headers=wrong, timeout=10).status_code == 401
        exporter = OTLPLogExporter(endpoint=url, headers={"Authorization": "Bearer s3cret"})
        assert exporter.export(records).name == "SUCCESS"
        assert_delivered(receiver, guarded, sent)
    finally:
        guarded.stop()


def test_backed_up_delivery_answers_503_for_logs(receiver: ReceiverHandle, tmp_path: Path) -> None:
    busy = Bridge(receiver, tmp_path / "busy.sqlite3", max_backlog=0)
    try:
        records, _ = application_logs()
        body = encode_logs(records).SerializeToString()
        response = requests.post(logs_url(busy), data=body, headers=PB, timeout=10)
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "backed up" in status_of(response).message
        assert receiver.store.count_clicks() == 0
    finally:
        busy.stop()


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"\x0a\xff\xff\xff\xff", PB, 400),
        (b"{not json", JSON_HEADERS, 400),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}',
         JSON_HEADERS, 400),
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"\x1f\x8b\x08\x00garbage", {**PB, "Content-Encoding": "gzip"}, 400),
        (b"x", {**PB, "Content-Encoding": "br"}, 415),
    ],
)  # fmt: skip
def test_malformed_logs_requests_get_4xx_with_a_status(
    bridge: Bridge, body: bytes, headers: dict[str, str], expected: int
) -> None:
    response = requests.post(logs_url(bridge), data=body, headers=headers, timeout=10)
    assert response.status_code == expected
    if headers["Content-Type"] == JSON_HEADERS["Content-Type"]:
        assert response.json()["message"]
    else:
        assert status_of(response).message
    assert bridge.stats["requests"] == 0


def test_a_gzip_bomb_to_logs_is_413_not_inflated(bridge: Bridge) -> None:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\x00" * (1 << 20)
    bomb = b"".join(squeeze.compress(zeros) for _ in range(512)) + squeeze.flush()  # 512 MiB
    response = requests.post(
        logs_url(bridge), data=bomb, headers={**PB, "Content-Encoding": "gzip"}, timeout=30
    )
    assert response.status_code == 413
    assert "decompressed body exceeds the limit" in status_of(response).message
