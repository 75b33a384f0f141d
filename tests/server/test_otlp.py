"""otlp.py: OTLP/HTTP bodies (protobuf and JSON) to the same click records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel.semconv import BUTTON_CLICK_EVENT
from agentsight_otel.server.otlp import (
    JSON,
    PROTOBUF,
    MalformedOTLP,
    decode_request,
    encode_response,
    media_type,
    records_from_request,
)
from agentsight_otel.wire.spans import records_from_spans


def finished_spans() -> Any:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("turn"):
        Tracker("conv-o", tracer_provider=tp).track_button(
            "evt", "Label ✓", "v", metadata={"a.b": [1, None, {"c": []}], "n": 2.5, "t": ["x"]}
        )
    with tracer.start_as_current_span("no-click") as span:
        span.add_event("other", {"k": "v"})
    Tracker("conv-p", tracer_provider=tp).track_button("evt", "Second", "w")
    return exporter.get_finished_spans()


def otlp_json(spans: Any) -> bytes:
    """OTLP/JSON as the spec writes it: lowerCamelCase keys and hex ids."""
    document = json_format.MessageToDict(encode_spans(spans))

    def hexify(node: Any) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and value:
                    import base64

                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)
        return node

    document = hexify(document)
    document["someFutureField"] = {"ignored": True}  # unknown fields are ignored
    return json.dumps(document).encode()


@pytest.mark.parametrize("kind", [PROTOBUF, JSON])
def test_otlp_gives_the_same_records_as_the_sdk_path(kind: str) -> None:
    spans = finished_spans()
    direct, _ = records_from_spans(spans)
    body = encode_spans(spans).SerializeToString() if kind == PROTOBUF else otlp_json(spans)
    bridged, rejected, reasons = records_from_request(decode_request(body, kind))
    assert rejected == 0 and reasons == []
    assert len(bridged) == 2

    def comparable(record: Any) -> tuple[Any, ...]:
        return (*record[:-1], {k: v for k, v in record.resource.items()})

    assert [comparable(r) for r in bridged] == [comparable(r) for r in direct]


def test_malformed_click_rejects_its_span_and_keeps_the_rest() -> None:
    spans = finished_spans()
    request = encode_spans(spans)
    event = request.resource_spans[0].scope_spans[0].spans[0].events[0]
    assert event.name == BUTTON_CLICK_EVENT
    for kv in event.attributes:
        if kv.key == "agentsight.button_label":
            kv.value.string_value = "   "
    records, rejected, reasons = records_from_request(request)
    assert rejected == 1
    assert "agentsight.button_label" in reasons[0]
    assert [r.label for r in records] == ["Second"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"\xff\xff\xff", PROTOBUF),
        (b"not json", JSON),
        (b"[1, 2]", JSON),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "00"}]}]}]}', JSON),
        (b'{"resourceSpans": 5}', JSON),
        (b"[" * 100_000 + b"]" * 100_000, JSON),
        ("\udcff".encode("utf-8", "surrogatepass"), JSON),
    ],
)
def test_malformed_bodies_are_refused_cleanly(body: bytes, kind: str) -> None:
    with pytest.raises(MalformedOTLP):
        decode_request(body, kind)


def test_responses_in_the_request_content_type() -> None:
    plain = ExportTraceServiceResponse()
    plain.ParseFromString(encode_response(PROTOBUF))
    assert not plain.HasField("partial_success")
    partial = ExportTraceServiceResponse()
    partial.ParseFromString(encode_response(PROTOBUF, 2, "2 spans had malformed clicks"))
    assert partial.partial_success.rejected_spans == 2
    document = json.loads(encode_response(JSON, 1, "bad"))
    assert document == {"partialSuccess": {"rejectedSpans": "1", "errorMessage": "bad"}}
    assert json.loads(encode_response(JSON)) == {}


def test_media_type() -> None:
    assert media_type("application/x-protobuf") == PROTOBUF
    assert media_type("Application/JSON; charset=utf-8") == JSON
    assert media_type("text/plain") is None
    assert media_type(None) is None
