"""Helpers for the bridge's gRPC tests: clicks recorded on a real SDK, the
receiver's view of them, and the generated OTLP stub's answers."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge, stored

TOKEN = "grpc-s3cret"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def target(bridge: Bridge) -> str:
    return bridge.grpc_url.split("://", 1)[1]


def clicks_recorded(provider: TracerProvider, count: int = 3) -> list[Any]:
    """Clicks recorded through ``provider``, each inside an agent's turn span."""
    tracer = provider.get_tracer("app")
    sent = []
    for n in range(count):
        with tracer.start_as_current_span(f"turn-{n}"):
            tracker = Tracker(f"conv-{n % 2}", tracer_provider=provider)
            sent.append(
                tracker.track_button(
                    "contact_human_agent", f"Button {n}", f"v{n}", metadata={"n": n}
                )
            )
        with tracer.start_as_current_span(f"quiet-{n}"):
            pass
    return sent


def finished_spans() -> tuple[list[ReadableSpan], list[Any]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    sent = clicks_recorded(provider)
    return list(memory.get_finished_spans()), sent


def assert_delivered(receiver: ReceiverHandle, bridge: Bridge, sent: list[Any]) -> None:
    assert bridge.exporter.force_flush(10_000)
    clicks = stored(receiver)
    assert set(clicks) == {s["click_id"] for s in sent}
    for s in sent:
        click = clicks[s["click_id"]]
        assert (click["trace_id"], click["span_id"]) == (s["trace_id"], s["span_id"])
        assert click["label"] == s["label"]
        assert click["metadata"] == {"n": int(s["value"][1:])}


def trailers(error: Any) -> dict[str, Any]:
    return dict(error.trailing_metadata() or ())


def stub(channel: grpc.Channel) -> Any:
    return TraceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated code


def trailing_status(error: grpc.RpcError) -> Any:
    """The ``google.rpc.Status`` of ``grpc-status-details-bin``."""
    details = trailers(error)["grpc-status-details-bin"]
    status = status_pb2.Status()
    status.ParseFromString(details)
    return status


def retry_delay(status: Any) -> int | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return int(info.retry_delay.seconds)
    return None


def spans_request() -> ExportTraceServiceRequest:
    spans, _ = finished_spans()
    return encode_spans(spans)
