"""Shared by the real-Collector tests: OTLP stand-ins for the AgentSight
bridge and the tracing backend, the Collector's metrics, and an application
(the real OpenTelemetry SDK) sending a known mix of spans.
"""

from __future__ import annotations

import gzip
import http.client
import re
import socket
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as ProtoLogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

#: Component ids in collector-config.yaml that the tests look at.
BRIDGE_EXPORTER = "otlp_http/agentsight_bridge"
BACKEND_EXPORTER = "otlp_grpc/tracing_backend"
EVENT_FILTER = "filter/agentsight_click_events"
SPAN_FILTER = "filter/agentsight_click_spans"
LOG_FILTER = "filter/agentsight_click_logs"
CLICK_COUNTER = "count/agentsight_clicks"
CLICK_PROMETHEUS = "prometheus/agentsight_clicks"

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


@dataclass(frozen=True)
class ReceivedLog:
    resource: dict[str, Any]
    record: ProtoLogRecord

    @property
    def attributes(self) -> dict[str, Any]:
        return attrs(self.record.attributes)

    @property
    def trace_id(self) -> str:
        """Hex; all zeros when the record has none (OTLP leaves an invalid id out)."""
        return self.record.trace_id.hex() or "0" * 32

    @property
    def span_id(self) -> str:
        return self.record.span_id.hex() or "0" * 16


def logs_of(requests: Sequence[logs_service_pb2.ExportLogsServiceRequest]) -> list[ReceivedLog]:
    return [
        ReceivedLog(attrs(rl.resource.attributes), record)
        for request in requests
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]


def scrape(port: int) -> str:
    """The text a Prometheus server would scrape from ``127.0.0.1:port/metrics``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200, (response.status, text[:500])
        return text
    finally:
        conn.close()


def collector_metrics(port: int) -> dict[str, float]:
    """The Collector's Prometheus metrics, keyed by ``name{labels}`` as printed."""
    metrics: dict[str, float] = {}
    for line in scrape(port).splitlines():
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
class BridgeLogRequest:
    headers: dict[str, str]
    body: logs_service_pb2.ExportLogsServiceRequest


@dataclass
class CaptureBridge:
    """Plays the AgentSight bridge: accepts ``POST /v1/traces`` and
    ``POST /v1/logs``, OTLP/HTTP protobuf."""

    port: int = 0
    requests: list[BridgeRequest] = field(default_factory=list)
    log_requests: list[BridgeLogRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> CaptureBridge:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path not in ("/v1/traces", "/v1/logs"):
                    self._reply(404, b"", "text/plain")
                    return
                if self.headers.get("Content-Type") != "application/x-protobuf":
                    self._reply(415, b"", "text/plain")
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                response: Message
                if self.path == "/v1/traces":
                    request = trace_service_pb2.ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    with bridge._lock:
                        bridge.requests.append(BridgeRequest(headers, request))
                    response = trace_service_pb2.ExportTraceServiceResponse()
                else:
                    logs = logs_service_pb2.ExportLogsServiceRequest()
                    logs.ParseFromString(body)
                    with bridge._lock:
                        bridge.log_requests.append(BridgeLogRequest(headers, logs))
                    response = logs_service_pb2.ExportLogsServiceResponse()
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

    def logs(self) -> list[ReceivedLog]:
        with self._lock:
            return logs_of([r.body for r in self.log_requests])

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


def with_optional_metrics_backend(shipped_config: Path, directory: Path) -> Path:
    """collector-config.yaml with its documented option on: the lines that
    start with `#>` uncommented (the OTLP metrics backend)."""
    text = shipped_config.read_text(encoding="utf-8")
    assert text.count("\n#>") >= 4, "the optional OTLP metrics backend lines are gone"
    enabled = directory / "collector-config-otlp-metrics.yaml"
    enabled.write_text(text.replace("\n#>", "\n"), encoding="utf-8")
    return enabled
