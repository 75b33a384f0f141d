"""Clicks from other SDKs: no ``agentsight.click_id``, a deterministic one derived.

Non-Python services emit the click event with only ``button_event``,
``label``, ``value`` and ``conversation_id`` (README, "Clicks from other
languages"). The bridge derives the click id from the trace id, span id,
event time and the event's attributes, so a request the sender repeats is
still stored once. Everything here runs through the real bridge into a real
receiver, with the stock OTLP exporters as senders.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel.semconv import (
    BUTTON_CLICK_EVENT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_VALUE,
    CONVERSATION_ID,
)
from agentsight_otel.server.otlp import JSON, PROTOBUF, decode_request, records_from_request
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge, stored
from tests.server.test_bridge import PB
from tests.server.test_otlp import otlp_json


def foreign_spans(labels: tuple[str, ...] = ("Create ticket", "Cancel")) -> Any:
    """Spans whose click events carry only the four minimal attributes, as
    a Node or Go service would record them (no click id, no metadata)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "node-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("foreign")
    for n, label in enumerate(labels):
        with tracer.start_as_current_span(f"turn-{n}") as span:
            span.add_event(
                BUTTON_CLICK_EVENT,
                {
                    BUTTON_EVENT: "contact_human_agent",
                    BUTTON_LABEL: label,
                    BUTTON_VALUE: f"v{n}",
                    CONVERSATION_ID: "conv-0",
                },
            )
    return memory.get_finished_spans()


def test_click_without_click_id_is_stored_once_when_sent_twice(
    receiver: ReceiverHandle, bridge: Bridge
) -> None:
    spans = foreign_spans()
    exporter = OTLPSpanExporter(endpoint=bridge.url)
    for _ in range(2):  # a sender retrying after a lost response
        assert exporter.export(spans).name == "SUCCESS"
    assert bridge.exporter.force_flush(10_000)
    clicks = stored(receiver)
    assert sorted(c["label"] for c in clicks.values()) == ["Cancel", "Create ticket"]
    assert receiver.store.count_clicks() == 2
    assert bridge.stats["clicks"] == 4 and bridge.stats["rejected_spans"] == 0
    for click_id, click in clicks.items():
        assert len(click_id) == 32 and int(click_id, 16) >= 0
        span = next(s for s in spans if s.events[0].attributes[BUTTON_LABEL] == click["label"])
        assert click["trace_id"] == f"{span.context.trace_id:032x}"
        assert click["span_id"] == f"{span.context.span_id:016x}"


def test_json_and_protobuf_of_one_click_derive_one_id(
    receiver: ReceiverHandle, bridge: Bridge
) -> None:
    spans = foreign_spans()
    protobuf = encode_spans(spans).SerializeToString()
    assert requests.post(bridge.url, data=protobuf, headers=PB, timeout=10).status_code == 200
    headers = {"Content-Type": "application/json"}
    response = requests.post(bridge.url, data=otlp_json(spans), headers=headers, timeout=10)
    assert response.status_code == 200
    assert bridge.exporter.force_flush(10_000)
    assert receiver.store.count_clicks() == 2


def test_derived_id_depends_on_every_input() -> None:
    """The id changes with the trace, span, time and any attribute; not with
    the attributes' order."""
    request = encode_spans(foreign_spans(("Same", "Same")))
    ids = [r.click_id for r in records_from_request(request)[0]]
    assert len(set(ids)) == 2  # the same click on two spans: two clicks

    def derived(edit: Any) -> str:
        copy = type(request)()
        copy.CopyFrom(request)
        edit(copy.resource_spans[0].scope_spans[0].spans[0])
        records, rejected, _ = records_from_request(copy)
        assert rejected == 0
        return records[0].click_id

    baseline = derived(lambda span: None)
    assert baseline == ids[0]

    def reverse(span: Any) -> None:
        attributes = list(span.events[0].attributes)
        del span.events[0].attributes[:]
        span.events[0].attributes.extend(reversed(attributes))

    assert derived(reverse) == baseline

    def set_attribute(key: str, value: str) -> Any:
        def edit(span: Any) -> None:
            for kv in span.events[0].attributes:
                if kv.key == key:
                    kv.value.string_value = value
                    return
            span.events[0].attributes.add(key=key).value.string_value = value

        return edit

    def shift_time(span: Any) -> None:
        span.events[0].time_unix_nano += 1

    def other_span(span: Any) -> None:
        span.span_id = bytes(7) + b"\x01"

    def other_trace(span: Any) -> None:
        span.trace_id = bytes(15) + b"\x01"

    variants = [
        derived(edit)
        for edit in (
            shift_time,
            other_span,
            other_trace,
            set_attribute(BUTTON_VALUE, "other"),
            set_attribute("agentsight.metadata.extra", "x"),
        )
    ]
    assert baseline not in variants and len(set(variants)) == len(variants)


def test_json_and_protobuf_decode_to_the_same_derived_id() -> None:
    spans = foreign_spans()
    from_protobuf = records_from_request(
        decode_request(encode_spans(spans).SerializeToString(), PROTOBUF)
    )[0]
    from_json = records_from_request(decode_request(otlp_json(spans), JSON))[0]
    assert len(from_protobuf) == 2
    assert [r.click_id for r in from_protobuf] == [r.click_id for r in from_json]


def test_rejected_click_is_answered_logged_escaped_and_counted(
    receiver: ReceiverHandle, bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    """A click the bridge cannot take still gets partial success (the OTLP
    rule), but it is also logged, with the sender's text escaped, and counted."""
    request = encode_spans(foreign_spans(("Fine", "Broken", "Forged")))
    spans = request.resource_spans[0].scope_spans[0].spans
    for kv in spans[1].events[0].attributes:
        if kv.key == BUTTON_LABEL:
            kv.value.string_value = " "
    # The rejection reason quotes the sender's metadata key, newline and all.
    forged = spans[2].events[0].attributes.add(key="agentsight.metadata_json")
    forged.value.string_value = '{"k\\nWARNING forged line": NaN}'
    with caplog.at_level(logging.WARNING, logger="agentsight_otel.bridge"):
        response = requests.post(
            bridge.url, data=request.SerializeToString(), headers=PB, timeout=10
        )
    assert response.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert bridge.stats["rejected_spans"] == 2 and bridge.stats["clicks"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "agentsight_otel.bridge"]
    assert any("rejected" in line and "agentsight.button_label" in line for line in lines)
    assert any("k\\x0aWARNING forged line" in line for line in lines)
    assert all("\n" not in line for line in lines)
    assert bridge.exporter.force_flush(10_000)
    assert [c["label"] for c in stored(receiver).values()] == ["Fine"]
