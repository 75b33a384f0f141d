"""The bridge over OTLP/gRPC: the stock gRPC exporters in, the local receiver out.

Everything is real: the SDK's providers with the stock
opentelemetry-exporter-otlp-proto-grpc exporters (or the generated OTLP
service stubs, to see status codes and trailing metadata), the bridge's
gRPC listener and HTTP app on loopback ports, and the receiver behind them.
The command, TLS and the Collector's Go exporter: test_bridge_grpc_command.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentsight_otel import Tracker
from agentsight_otel.server.bridge_core import RETRY_AFTER_SECONDS
from agentsight_otel.server.grpc_bridge import MAX_GRPC_MESSAGE_BYTES, WORKERS, GrpcBridge
from agentsight_otel.server.otlp_bounds import MAX_SPANS
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge, blank_labels_ending, stored
from tests.server.grpc_support import (
    TOKEN,
    TRACE_EXPORT,
    assert_delivered,
    clicks_recorded,
    finished_spans,
    retry_delay,
    spans_request,
    stub,
    target,
    trailers,
    trailing_status,
)


@pytest.fixture
def grpc_bridge(receiver: ReceiverHandle, tmp_path: Path) -> Iterator[Bridge]:
    """A bridge with its gRPC listener, delivering to ``receiver``."""
    running = Bridge(receiver, tmp_path / "grpc-spool.sqlite3", grpc=True)
    yield running
    running.stop()


@pytest.fixture
def channel(grpc_bridge: Bridge) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        target(grpc_bridge), options=[("grpc.max_send_message_length", -1)]
    ) as opened:
        yield opened


# -- the stock exporters -----------------------------------------------------------


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_stock_grpc_span_exporter_delivers_clicks_with_their_trace_ids(
    receiver: ReceiverHandle, grpc_bridge: Bridge, compression: grpc.Compression
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    exporter = OTLPSpanExporter(
        endpoint=grpc_bridge.grpc_url, insecure=True, compression=compression
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sent = clicks_recorded(provider)
    provider.shutdown()
    assert_delivered(receiver, grpc_bridge, sent)
    stats = grpc_bridge.stats
    assert (stats["requests"], stats["spans"], stats["clicks"]) == (6, 6, 3)
    assert stats["spans_without_clicks"] == 3


def test_stock_grpc_log_exporter_delivers_click_log_records(
    receiver: ReceiverHandle, grpc_bridge: Bridge
) -> None:
    """Clicks recorded as log-based events (``Tracker(signal="log_event")``)
    and sent by the stock gRPC log exporter arrive with their trace ids;
    an ordinary log record beside them is counted and ignored."""
    tracer_provider = TracerProvider()
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=grpc_bridge.grpc_url, insecure=True))
    )
    tracer = tracer_provider.get_tracer("app")
    sent = []
    for n in range(3):
        with tracer.start_as_current_span(f"turn-{n}"):
            tracker = Tracker(
                f"conv-{n % 2}",
                tracer_provider=tracer_provider,
                signal="log_event",
                logger_provider=logger_provider,
            )
            sent.append(
                tracker.track_button(
                    "contact_human_agent", f"Button {n}", f"v{n}", metadata={"n": n}
                )
            )
    logger = logger_provider.get_logger("app")
    logger.emit(body="an ordinary log line", attributes={"kind": "not a click"})
    logger_provider.shutdown()
    tracer_provider.shutdown()
    assert grpc_bridge.stats["log_records"] == 4
    assert grpc_bridge.stats["log_records_without_clicks"] == 1
    assert_delivered(receiver, grpc_bridge, sent)


# -- answers, read with the generated OTLP stub -------------------------------------


def test_partial_success_for_malformed_clicks(
    receiver: ReceiverHandle, grpc_bridge: Bridge, channel: grpc.Channel
) -> None:
    spans, sent = finished_spans()
    request = encode_spans(spans)
    assert blank_labels_ending(request, "1") == 1
    answer = stub(channel).Export(request, timeout=10)
    assert answer.partial_success.rejected_spans == 1
    assert "agentsight.button_label" in answer.partial_success.error_message
    assert grpc_bridge.exporter.force_flush(10_000)
    assert set(stored(receiver)) == {sent[0]["click_id"], sent[2]["click_id"]}


def test_a_request_without_malformed_clicks_has_no_partial_success(
    grpc_bridge: Bridge, channel: grpc.Channel
) -> None:
    answer = stub(channel).Export(spans_request(), timeout=10)
    assert not answer.HasField("partial_success")


def _raw_export(channel: grpc.Channel, body: bytes, **kwargs: Any) -> Any:
    """An Export call with ``body`` as the request message, as is on the wire."""
    call: Any = channel.unary_unary(
        TRACE_EXPORT, request_serializer=None, response_deserializer=None
    )
    return call(body, timeout=30, **kwargs)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x0a\xff\xff\xff\xff", id="length-past-the-end"),
        pytest.param(b"\x0a\x02\x0a\x05", id="nested-message-cut-off"),
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", id="overlong-varint"),
    ],
)
def test_malformed_request_is_invalid_argument(channel: grpc.Channel, body: bytes) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _raw_export(channel, body)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = trailing_status(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "ExportTraceServiceRequest" in status.message
    assert retry_delay(status) is None


def test_message_over_the_size_limit_is_resource_exhausted(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        _raw_export(channel, b"\x00" * (MAX_GRPC_MESSAGE_BYTES + 1))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_compressed_bomb_is_refused_not_inflated(channel: grpc.Channel) -> None:
    # 64 MiB of zeros, a few tens of KiB on the wire with gzip.
    with pytest.raises(grpc.RpcError) as raised:
        _raw_export(
            channel, b"\x00" * (4 * MAX_GRPC_MESSAGE_BYTES), compression=grpc.Compression.Gzip
        )
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_request_over_a_count_bound_is_refused_for_good(
    grpc_bridge: Bridge, channel: grpc.Channel
) -> None:
    """More spans than a request may hold: refused before the clicks are read,
    and without RetryInfo, since sending it again cannot help."""
    scope = ScopeSpans(spans=[Span() for _ in range(MAX_SPANS + 1)])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[scope])])
    with pytest.raises(grpc.RpcError) as raised:
        stub(channel).Export(request, timeout=30)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{MAX_SPANS:,} spans" in str(error.details())
    assert retry_delay(trailing_status(error)) is None
    assert grpc_bridge.stats["spans"] == 0


def test_wrong_or_missing_token_is_unauthenticated(
    receiver: ReceiverHandle, tmp_path: Path
) -> None:
    guarded = Bridge(receiver, tmp_path / "guarded.sqlite3", grpc=True, token=TOKEN)
    try:
        request = spans_request()
        with grpc.insecure_channel(target(guarded)) as channel:
            service = stub(channel)
            for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.RpcError) as raised:
                    service.Export(request, metadata=metadata, timeout=10)
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert guarded.stats["requests"] == 0
            service.Export(request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
        assert guarded.stats["clicks"] == 3
    finally:
        guarded.stop()


def test_stock_exporter_with_the_token_header_delivers(
    receiver: ReceiverHandle, tmp_path: Path
) -> None:
    guarded = Bridge(receiver, tmp_path / "guarded.sqlite3", grpc=True, token=TOKEN)
    try:
        spans, sent = finished_spans()
        exporter = OTLPSpanExporter(
            endpoint=guarded.grpc_url, insecure=True, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert exporter.export(spans).name == "SUCCESS"
        assert_delivered(receiver, guarded, sent)
    finally:
        guarded.stop()


def test_backed_up_delivery_is_unavailable_with_retry_info(
    receiver: ReceiverHandle, tmp_path: Path
) -> None:
    busy = Bridge(receiver, tmp_path / "busy.sqlite3", grpc=True, max_backlog=0)
    try:
        with (
            grpc.insecure_channel(target(busy)) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            stub(channel).Export(spans_request(), timeout=10)
        error = raised.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        status = trailing_status(error)
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "backed up" in status.message
        assert retry_delay(status) == RETRY_AFTER_SECONDS
        # The Python exporter reads the delay from its own trailer.
        info = error_details_pb2.RetryInfo()
        info.ParseFromString(trailers(error)["google.rpc.retryinfo-bin"])
        assert info.retry_delay.seconds == RETRY_AFTER_SECONDS
    finally:
        busy.stop()


def test_full_queue_is_resource_exhausted_with_retry_info(
    receiver: ReceiverHandle, tmp_path: Path
) -> None:
    """Memory delivery with room for two clicks: a request of three is refused
    whole, retryable, and nothing of it is delivered."""
    full = Bridge(
        receiver,
        None,
        grpc=True,
        exporter_kwargs={"max_queue_size": 2, "drop_policy": "newest"},
    )
    try:
        with (
            grpc.insecure_channel(target(full)) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            stub(channel).Export(spans_request(), timeout=10)
        error = raised.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = trailing_status(error)
        assert "full" in status.message
        assert retry_delay(status) == RETRY_AFTER_SECONDS
        assert full.exporter.force_flush(10_000)
        assert receiver.store.count_clicks() == 0
    finally:
        full.stop()


def test_a_port_in_use_is_an_error(grpc_bridge: Bridge) -> None:
    assert grpc_bridge.grpc is not None
    with pytest.raises(OSError, match="cannot listen"):
        GrpcBridge(grpc_bridge.app.state.core, "127.0.0.1", grpc_bridge.grpc.port)


def test_other_services_are_unimplemented(channel: grpc.Channel) -> None:
    """Metrics are not the bridge's: the stock exporter is told so for good."""
    call: Any = channel.unary_unary(
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.RpcError) as raised:
        call(b"", timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- slow and silent senders ----------------------------------------------------------


def _stalled_calls(channel: grpc.Channel, count: int, release: threading.Event) -> list[Any]:
    """``count`` Export calls whose request message never comes until
    ``release`` is set (then they end without one)."""

    def nothing_until_released() -> Iterator[bytes]:
        release.wait(60)
        yield from ()

    call: Any = channel.stream_unary(
        TRACE_EXPORT, request_serializer=None, response_deserializer=None
    )
    return [call.future(nothing_until_released(), timeout=60) for _ in range(count)]


def test_stalled_senders_do_not_hold_up_the_others(
    receiver: ReceiverHandle, grpc_bridge: Bridge, channel: grpc.Channel
) -> None:
    """More silent calls than worker threads, and an honest export still goes
    through: waiting for a message holds no thread. A call that ends with no
    message at all is INVALID_ARGUMENT."""
    release = threading.Event()
    stalled = _stalled_calls(channel, 2 * WORKERS, release)
    try:
        spans, sent = finished_spans()
        with grpc.insecure_channel(target(grpc_bridge)) as other:
            stub(other).Export(encode_spans(spans), timeout=30)
        assert_delivered(receiver, grpc_bridge, sent)
        assert not any(call.done() for call in stalled)
    finally:
        release.set()
    for call in stalled:
        with pytest.raises(grpc.RpcError) as raised:
            call.result()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "got none" in str(raised.value.details())


def test_a_message_that_does_not_arrive_in_time_ends_the_call(bridge: Bridge) -> None:
    listener = GrpcBridge(bridge.app.state.core, "127.0.0.1", 0, read_timeout=0.5)
    listener.start()
    release = threading.Event()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{listener.port}") as channel:
            (call,) = _stalled_calls(channel, 1, release)
            with pytest.raises(grpc.RpcError) as raised:
                call.result()
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "did not arrive within 0.5 s" in str(raised.value.details())
        assert bridge.stats["requests"] == 0
    finally:
        release.set()
        listener.stop()


def test_ipv6_loopback(bridge: Bridge) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        listener = GrpcBridge(bridge.app.state.core, "::1", 0)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    listener.start()
    try:
        assert listener.url == f"http://[::1]:{listener.port}"
        with grpc.insecure_channel(f"[::1]:{listener.port}") as channel:
            answer = stub(channel).Export(spans_request(), timeout=30)
        assert not answer.HasField("partial_success")
        assert bridge.stats["clicks"] == 3
    finally:
        listener.stop()
