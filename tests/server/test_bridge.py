"""The OTLP bridge over real HTTP: stock OTLP exporter in, local receiver out."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import TrackedClick, Tracker
from agentsight_otel.server.bridge import MAX_OTLP_BODY_BYTES
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge, blank_labels_ending, stored
from tests.server.test_otlp import otlp_json

PB = {"Content-Type": "application/x-protobuf"}


def application_spans() -> tuple[Any, list[TrackedClick]]:
    """Spans with and without clicks, as an application's SDK finishes them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bridge-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    sent = []
    for n in range(3):
        with tracer.start_as_current_span(f"turn-{n}"):
            tracker = Tracker(f"conv-{n % 2}", tracer_provider=provider)
            sent.append(
                tracker.track_button(
                    "contact_human_agent",
                    f"Button {n}",
                    f"v{n}",
                    metadata={"n": n, "tags": ["a", "b"]},
                )
            )
        with tracer.start_as_current_span(f"quiet-{n}"):
            pass
    return memory.get_finished_spans(), sent


def assert_delivered(receiver: ReceiverHandle, bridge: Bridge, sent: list[TrackedClick]) -> None:
    assert bridge.exporter.force_flush(10_000)
    clicks = stored(receiver)
    assert set(clicks) == {s["click_id"] for s in sent}
    for s in sent:
        click = clicks[s["click_id"]]
        assert (click["trace_id"], click["span_id"]) == (s["trace_id"], s["span_id"])
        assert click["metadata"] == {"n": int(s["value"][1:]), "tags": ["a", "b"]}


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_stock_otlp_exporter_protobuf(
    receiver: ReceiverHandle, bridge: Bridge, compression: Compression
) -> None:
    spans, sent = application_spans()
    exporter = OTLPSpanExporter(endpoint=bridge.url, compression=compression)
    assert exporter.export(spans).name == "SUCCESS"
    assert_delivered(receiver, bridge, sent)
    assert bridge.stats["clicks"] == 3 and bridge.stats["spans"] == 6


@pytest.mark.parametrize("gzipped", [False, True])
def test_otlp_json(receiver: ReceiverHandle, bridge: Bridge, gzipped: bool) -> None:
    spans, sent = application_spans()
    body = otlp_json(spans)
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    response = requests.post(bridge.url, data=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    assert_delivered(receiver, bridge, sent)


def test_partial_success_for_malformed_clicks(receiver: ReceiverHandle, bridge: Bridge) -> None:
    spans, sent = application_spans()
    request = encode_spans(spans)
    assert blank_labels_ending(request, "1") == 1
    response = requests.post(bridge.url, data=request.SerializeToString(), headers=PB, timeout=10)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "agentsight.button_label" in answer.partial_success.error_message
    assert bridge.exporter.force_flush(10_000)
    assert set(stored(receiver)) == {sent[0]["click_id"], sent[2]["click_id"]}


def _status(response: requests.Response) -> Any:
    status = status_pb2.Status()
    status.ParseFromString(response.content)
    return status


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"\x0a\xff\xff\xff\xff", PB, 400),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"\x1f\x8b\x08\x00garbage", {**PB, "Content-Encoding": "gzip"}, 400),
        (b"x", {**PB, "Content-Encoding": "br"}, 415),
    ],
)
def test_malformed_requests_get_4xx(
    bridge: Bridge, body: bytes, headers: dict[str, str], expected: int
) -> None:
    response = requests.post(bridge.url, data=body, headers=headers, timeout=10)
    assert response.status_code == expected
    if headers["Content-Type"] == "application/x-protobuf":
        assert _status(response).message


def test_oversized_body_is_413_before_reading_it(bridge: Bridge) -> None:
    body = b"\x00" * (MAX_OTLP_BODY_BYTES + 1)
    response = requests.post(bridge.url, data=body, headers=PB, timeout=30)
    assert response.status_code == 413


def test_gzip_bomb_is_413_not_inflated(bridge: Bridge) -> None:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\x00" * (1 << 20)
    bomb = b"".join(squeeze.compress(zeros) for _ in range(512)) + squeeze.flush()  # 512 MiB
    assert len(bomb) < 2 * 1024 * 1024
    response = requests.post(
        bridge.url, data=bomb, headers={**PB, "Content-Encoding": "gzip"}, timeout=30
    )
    assert response.status_code == 413


def test_backed_up_delivery_answers_503_with_retry_after(
    receiver: ReceiverHandle, tmp_path: Path
) -> None:
    busy = Bridge(receiver, tmp_path / "busy.sqlite3", max_backlog=0)
    try:
        spans, _ = application_spans()
        response = requests.post(
            busy.url, data=encode_spans(spans).SerializeToString(), headers=PB, timeout=10
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "backed up" in _status(response).message
    finally:
        busy.stop()


def test_token_is_required_when_configured(receiver: ReceiverHandle, tmp_path: Path) -> None:
    guarded = Bridge(receiver, tmp_path / "guarded.sqlite3", token="s3cret")
    try:
        spans, sent = application_spans()
        body = encode_spans(spans).SerializeToString()
        assert requests.post(guarded.url, data=body, headers=PB, timeout=10).status_code == 401
        wrong = {**PB, "Authorization": "Bearer nope"}
        assert requests.post(guarded.url, data=body, headers=wrong, timeout=10).status_code == 401
        right = {**PB, "Authorization": "Bearer s3cret"}
        assert requests.post(guarded.url, data=body, headers=right, timeout=10).status_code == 200
        assert_delivered(receiver, guarded, sent)
    finally:
        guarded.stop()


def test_redelivery_by_the_sender_is_stored_once(receiver: ReceiverHandle, bridge: Bridge) -> None:
    spans, sent = application_spans()
    body = encode_spans(spans).SerializeToString()
    for _ in range(3):  # a Collector retrying after a lost response
        assert requests.post(bridge.url, data=body, headers=PB, timeout=10).status_code == 200
    assert bridge.exporter.force_flush(10_000)
    assert receiver.store.count_clicks() == len(sent)
