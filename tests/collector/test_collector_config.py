"""collector-config.yaml, checked by a real OpenTelemetry Collector.

* ``otelcol validate`` accepts the file as shipped, with and without its
  environment variables set, and the defaults resolve to loopback addresses.
* End to end: the Python OpenTelemetry SDK sends spans, with and without
  ``agentsight.button_click`` events, over OTLP/HTTP and OTLP/gRPC to the
  Collector; a stand-in AgentSight bridge (a plain HTTP server here) must get
  exactly the click spans, and a stand-in tracing backend (a gRPC server) must
  get every span untouched.

Completion is judged from the Collector's own metrics (how many spans entered
and left the filter processors) rather than by sleeping.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, CLICK_ID, CONVERSATION_ID

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]

#: Component ids in collector-config.yaml that the tests look at.
BRIDGE_EXPORTER = "otlp_http/agentsight_bridge"
BACKEND_EXPORTER = "otlp_grpc/tracing_backend"
EVENT_FILTER = "filter/agentsight_click_events"
SPAN_FILTER = "filter/agentsight_click_spans"

DELIVERY_TIMEOUT_S = 30.0
OTHER_EVENT = "app.cache_miss"


# --- small helpers ---------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def attrs(key_values: Sequence[KeyValue]) -> dict[str, Any]:
    """OTLP attributes as a dict of plain values (strings and ints suffice here)."""
    out: dict[str, Any] = {}
    for kv in key_values:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@dataclass(frozen=True)
class ReceivedSpan:
    resource: dict[str, Any]
    span: ProtoSpan

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def event_names(self) -> list[str]:
        return [event.name for event in self.span.events]


def spans_of(requests: Sequence[trace_service_pb2.ExportTraceServiceRequest]) -> list[ReceivedSpan]:
    return [
        ReceivedSpan(attrs(rs.resource.attributes), span)
        for request in requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def collector_metrics(port: int) -> dict[str, float]:
    """The Collector's Prometheus metrics, keyed by ``name{labels}`` as printed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    return metrics


def metric(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the series of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in metrics.items():
        series, _, label_text = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if series == name and all(found.get(k) == v for k, v in labels.items()):
            total += value
    return total


# --- stand-ins for the AgentSight bridge and the tracing backend ----------


@dataclass
class BridgeRequest:
    headers: dict[str, str]
    body: trace_service_pb2.ExportTraceServiceRequest


@dataclass
class CaptureBridge:
    """Plays the AgentSight bridge: accepts ``POST /v1/traces`` OTLP/HTTP protobuf."""

    port: int = 0
    requests: list[BridgeRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> CaptureBridge:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self._reply(404, b"", "text/plain")
                    return
                if self.headers.get("Content-Type") != "application/x-protobuf":
                    self._reply(415, b"", "text/plain")
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with bridge._lock:
                    bridge.requests.append(BridgeRequest(headers, request))
                response = trace_service_pb2.ExportTraceServiceResponse()
                self._reply(200, response.SerializeToString(), "application/x-protobuf")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return spans_of([r.body for r in self.requests])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class CaptureBackend(trace_service_pb2_grpc.TraceServiceServicer):
    """Plays the user's tracing backend: an OTLP/gRPC trace service."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            self, self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return spans_of(list(self.requests))

    def close(self) -> None:
        self._server.stop(grace=None)


@pytest.fixture
def bridge() -> Iterator[CaptureBridge]:
    capture = CaptureBridge().start()
    try:
        yield capture
    finally:
        capture.close()


@pytest.fixture
def backend() -> Iterator[CaptureBackend]:
    capture = CaptureBackend()
    try:
        yield capture
    finally:
        capture.close()


# --- the application side ---------------------------------------------------


@dataclass(frozen=True)
class Click:
    click_id: str
    trace_id: str
    span_id: str


@dataclass
class Sent:
    """What the application sent: every span, and the clicks among them."""

    service_name: str
    clicks: list[Click] = field(default_factory=list)
    #: span id -> event names, for every span sent.
    events_by_span: dict[str, list[str]] = field(default_factory=dict)
    trace_by_span: dict[str, str] = field(default_factory=dict)

    @property
    def click_span_ids(self) -> set[str]:
        return {click.span_id for click in self.clicks}


def send_spans(
    exporter: SpanExporter, make_processor: Callable[[SpanExporter], SpanProcessor]
) -> Sent:
    """Emit a mix of spans through the real SDK, flush, and shut down."""
    sent = Sent(service_name=f"collector-test-{uuid.uuid4().hex[:8]}")
    provider = TracerProvider(resource=Resource.create({"service.name": sent.service_name}))
    provider.add_span_processor(make_processor(exporter))
    tracer = provider.get_tracer("agentsight_otel.tests.collector")
    conversation = uuid.uuid4().hex

    def click(span: Any) -> None:
        click_id = uuid.uuid4().hex
        span.add_event(BUTTON_CLICK_EVENT, {CLICK_ID: click_id, CONVERSATION_ID: conversation})
        ctx = span.get_span_context()
        sent.clicks.append(Click(click_id, f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"))

    def record(span: Any, events: list[str]) -> None:
        ctx = span.get_span_context()
        sent.events_by_span[f"{ctx.span_id:016x}"] = events
        sent.trace_by_span[f"{ctx.span_id:016x}"] = f"{ctx.trace_id:032x}"

    # Plain spans and spans with unrelated events: never for AgentSight.
    for i in range(3):
        with tracer.start_as_current_span(f"plain {i}") as span:
            record(span, [])
    for i in range(3):
        with tracer.start_as_current_span(f"other events {i}") as span:
            span.add_event(OTHER_EVENT, {"key": f"k{i}"})
            span.add_event("agentsight.button_render")  # similar name, not a click
            record(span, [OTHER_EVENT, "agentsight.button_render"])
    # A request whose child span has a click: only the child goes to AgentSight.
    with tracer.start_as_current_span("POST /chat") as parent:
        with tracer.start_as_current_span("handle click") as child:
            click(child)
            record(child, [BUTTON_CLICK_EVENT])
        record(parent, [])
    # Clicks on spans that also carry other events.
    for i in range(3):
        with tracer.start_as_current_span(f"click {i}") as span:
            span.add_event(OTHER_EVENT)
            click(span)
            record(span, [OTHER_EVENT, BUTTON_CLICK_EVENT])
    # Two clicks on one span.
    with tracer.start_as_current_span("double click") as span:
        click(span)
        click(span)
        record(span, [BUTTON_CLICK_EVENT, BUTTON_CLICK_EVENT])

    assert provider.force_flush(30_000), "the SDK could not flush to the Collector"
    provider.shutdown()
    return sent


def wait_until_filtered(metrics_port: int, sent: Sent) -> None:
    """Wait until every sent span has been through the AgentSight filters, and
    check the span filter let exactly the click spans through."""
    total = len(sent.events_by_span)

    def through() -> bool:
        m = collector_metrics(metrics_port)
        return metric(m, "otelcol_processor_incoming_items", processor=SPAN_FILTER) >= total

    wait_for(through, DELIVERY_TIMEOUT_S, f"{total} spans to reach {SPAN_FILTER}")
    m = collector_metrics(metrics_port)
    assert metric(m, "otelcol_processor_incoming_items", processor=SPAN_FILTER) == total
    passed = metric(m, "otelcol_processor_outgoing_items", processor=SPAN_FILTER)
    assert passed == len(sent.click_span_ids)


def assert_bridge_got_exactly_the_clicks(bridge: CaptureBridge, sent: Sent) -> None:
    expected_spans = sent.click_span_ids
    wait_for(
        lambda: len(bridge.spans()) >= len(expected_spans),
        DELIVERY_TIMEOUT_S,
        f"{len(expected_spans)} click spans at the bridge",
    )
    received = bridge.spans()
    # Exactly the click spans, each once (nothing else: the filter metrics
    # already showed only these left the filter).
    assert sorted(s.span_id for s in received) == sorted(expected_spans)
    for span in received:
        assert span.trace_id == sent.trace_by_span[span.span_id]
        assert span.resource.get("service.name") == sent.service_name
        # Only click events travel to AgentSight; other events were removed.
        assert set(span.event_names) == {BUTTON_CLICK_EVENT}
    # Each click exactly once, on the span and in the trace it was made in.
    got = [
        Click(attrs(event.attributes)[CLICK_ID], span.trace_id, span.span_id)
        for span in received
        for event in span.span.events
    ]
    assert sorted(got, key=lambda c: c.click_id) == sorted(sent.clicks, key=lambda c: c.click_id)


def debug_exporter_span_count(log: str) -> int:
    """Spans the `debug` exporter (basic verbosity) reported in the Collector log."""
    return sum(
        int(m.group(1))
        for line in log.splitlines()
        if '"otelcol.component.id": "debug"' in line
        for m in [re.search(r'"spans": (\d+)', line)]
        if m
    )


# --- configuration ------------------------------------------------------------


def test_filter_names_the_semconv_click_event(shipped_config: Path) -> None:
    text = shipped_config.read_text(encoding="utf-8")
    assert f'spanevent.name != "{BUTTON_CLICK_EVENT}"' in text
    assert "Len(span.events) == 0" in text


def test_validate_as_shipped_with_defaults(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    result = run_otelcol("validate", "--config", str(shipped_config))
    assert result.returncode == 0, result.stderr


def test_validate_as_shipped_with_env_set(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    env = {
        "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": "0.0.0.0:14317",
        "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": "0.0.0.0:14318",
        "AGENTSIGHT_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "AGENTSIGHT_COLLECTOR_METRICS_PORT": "18888",
        "TRACING_BACKEND_ENDPOINT": "tempo.example.invalid:4317",
        "TRACING_BACKEND_INSECURE": "false",
        "AGENTSIGHT_BRIDGE_ENDPOINT": "https://bridge.example.invalid:8443",
        "AGENTSIGHT_BRIDGE_TOKEN": "test-key",
    }
    result = run_otelcol("validate", "--config", str(shipped_config), env=env)
    assert result.returncode == 0, result.stderr


def resolved_config(
    run_otelcol: Callable[..., Any], config: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    result = run_otelcol(
        "print-config",
        "--config",
        str(config),
        "--format",
        "json",
        "--mode",
        "unredacted",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def test_defaults_listen_and_send_on_loopback_only(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    config = resolved_config(run_otelcol, shipped_config)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"
    exporters = config["exporters"]
    assert exporters[BRIDGE_EXPORTER]["endpoint"] == "http://127.0.0.1:4319"
    assert exporters[BACKEND_EXPORTER]["endpoint"].startswith("127.0.0.1:")
    assert exporters[BACKEND_EXPORTER]["tls"]["insecure"] is True
    prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert prometheus["prometheus"]["host"] == "127.0.0.1"
    bridge = exporters[BRIDGE_EXPORTER]
    assert bridge["compression"] == "gzip"
    # An enabled queue prints its settings; a disabled one prints null.
    assert bridge["sending_queue"]["queue_size"] > 0
    assert bridge["retry_on_failure"]["enabled"] is True


def test_clicks_are_queued_on_disk_and_never_given_up(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    config = resolved_config(run_otelcol, shipped_config)
    bridge = config["exporters"][BRIDGE_EXPORTER]
    storage = bridge["sending_queue"]["storage"]
    assert storage in config["service"]["extensions"]
    assert config["extensions"][storage]["directory"] == "/var/lib/otelcol/agentsight"
    assert config["extensions"][storage]["create_directory"] is True
    assert bridge["retry_on_failure"]["max_elapsed_time"] in ("0s", 0)
    # Nothing between the receiver and the persistent queue holds acknowledged
    # clicks in memory: the batch processor would (the queue batches instead).
    processors = config["service"]["pipelines"]["traces/agentsight"]["processors"]
    assert not [p for p in processors if p.split("/")[0] == "batch"], processors
    assert bridge["sending_queue"]["batch"]["flush_timeout"] == 200_000_000  # ns: 200ms


def test_env_vars_are_substituted(run_otelcol: Callable[..., Any], shipped_config: Path) -> None:
    env = {
        "TRACING_BACKEND_ENDPOINT": "tempo.example.invalid:4317",
        "TRACING_BACKEND_INSECURE": "false",
        "AGENTSIGHT_BRIDGE_ENDPOINT": "https://bridge.example.invalid:8443",
        "AGENTSIGHT_BRIDGE_TOKEN": "test-key",
    }
    exporters = resolved_config(run_otelcol, shipped_config, env)["exporters"]
    assert exporters[BACKEND_EXPORTER]["endpoint"] == "tempo.example.invalid:4317"
    # (false is the zero value, which print-config leaves out)
    assert exporters[BACKEND_EXPORTER].get("tls", {}).get("insecure", False) is False
    assert exporters[BRIDGE_EXPORTER]["endpoint"] == "https://bridge.example.invalid:8443"
    assert {"name": "authorization", "value": "Bearer test-key"} in exporters[BRIDGE_EXPORTER][
        "headers"
    ]


# --- end to end ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "processor_type"),
    [("http", BatchSpanProcessor), ("grpc", SimpleSpanProcessor), ("http", SimpleSpanProcessor)],
)
def test_only_click_spans_reach_the_bridge(
    start_collector: Callable[..., Any],
    bridge: CaptureBridge,
    protocol: str,
    processor_type: Callable[[SpanExporter], SpanProcessor],
) -> None:
    # The tracing backend is absent (nothing listens on its port): the
    # Collector must still start and deliver to AgentSight.
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint,
            "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
            "AGENTSIGHT_BRIDGE_TOKEN": "secret-test-key",
        }
    )
    exporter: SpanExporter
    if protocol == "http":
        exporter = HttpSpanExporter(endpoint=collector.http_traces_url, timeout=10)
    else:
        exporter = GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=10)

    sent = send_spans(exporter, processor_type)

    wait_until_filtered(collector.metrics_port, sent)
    assert_bridge_got_exactly_the_clicks(bridge, sent)
    for request in bridge.requests:
        assert request.headers.get("content-encoding") == "gzip"
        assert request.headers.get("authorization") == "Bearer secret-test-key"
    # The `traces` pipeline (debug exporter) saw every span, clicks or not.
    wait_for(
        lambda: debug_exporter_span_count(collector.log()) >= len(sent.events_by_span),
        DELIVERY_TIMEOUT_S,
        "the debug exporter to log every span",
    )
    assert debug_exporter_span_count(collector.log()) == len(sent.events_by_span)


def test_tracing_backend_gets_every_span_unchanged(
    start_collector: Callable[..., Any], bridge: CaptureBridge, backend: CaptureBackend
) -> None:
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint,
            "TRACING_BACKEND_ENDPOINT": backend.endpoint,
        }
    )
    sent = send_spans(HttpSpanExporter(endpoint=collector.http_traces_url), BatchSpanProcessor)

    wait_for(
        lambda: len(backend.spans()) >= len(sent.events_by_span),
        DELIVERY_TIMEOUT_S,
        "every span at the tracing backend",
    )
    received = {s.span_id: s for s in backend.spans()}
    assert len(backend.spans()) == len(received) == len(sent.events_by_span)
    # Every span, with all its events: the AgentSight pipeline's event
    # filtering works on its own copy and must not leak into this one.
    assert {sid: s.event_names for sid, s in received.items()} == sent.events_by_span
    assert {sid: s.trace_id for sid, s in received.items()} == sent.trace_by_span

    wait_until_filtered(collector.metrics_port, sent)
    assert_bridge_got_exactly_the_clicks(bridge, sent)
    # Without AGENTSIGHT_BRIDGE_TOKEN the header is present but carries no key.
    assert all(r.headers.get("authorization", "").strip() == "Bearer" for r in bridge.requests)


def test_clicks_wait_for_a_bridge_that_is_down(start_collector: Callable[..., Any]) -> None:
    port = free_port()  # the bridge is not listening yet
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": f"http://127.0.0.1:{port}",
            "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
        }
    )
    sent = send_spans(HttpSpanExporter(endpoint=collector.http_traces_url), BatchSpanProcessor)
    wait_until_filtered(collector.metrics_port, sent)

    def bridge_export_failed() -> bool:
        return any(
            "Exporting failed. Will retry" in line and BRIDGE_EXPORTER in line
            for line in collector.log().splitlines()
        )

    wait_for(bridge_export_failed, DELIVERY_TIMEOUT_S, "a failed, to-be-retried export")

    late_bridge = CaptureBridge(port=port).start()
    try:
        assert_bridge_got_exactly_the_clicks(late_bridge, sent)
    finally:
        late_bridge.close()


def test_collector_stops_cleanly(start_collector: Callable[..., Any]) -> None:
    collector = start_collector(env={"TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}"})
    assert collector.stop() == 0, collector.log()[-4000:]
