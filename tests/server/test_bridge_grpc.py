"""The bridge over OTLP/gRPC: the stock gRPC exporters in, the local receiver out.

Everything is real: the SDK's providers with the stock
opentelemetry-exporter-otlp-proto-grpc exporters (or the generated OTLP
service stubs, to see status codes and trailing metadata), the bridge's
gRPC listener and HTTP app on loopback ports, and the receiver behind them.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker, cli
from agentsight_otel.server.bridge_core import RETRY_AFTER_SECONDS
from agentsight_otel.server.grpc_bridge import MAX_GRPC_MESSAGE_BYTES, WORKERS, GrpcBridge
from agentsight_otel.server.otlp_bounds import MAX_SPANS
from agentsight_otel.server.receiver import ReceiverHandle
from conftest import API_KEY

from bridge_harness import Bridge

TOKEN = "grpc-s3cret"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def grpc_bridge(receiver: ReceiverHandle, tmp_path: Path) -> Iterator[Bridge]:
    """A bridge with its gRPC listener, delivering to ``receiver``."""
    running = Bridge(receiver, tmp_path / "grpc-spool.sqlite3", grpc=True)
    yield running
    running.stop()


def _target(bridge: Bridge) -> str:
    return bridge.grpc_url.split("://", 1)[1]


@pytest.fixture
def channel(grpc_bridge: Bridge) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        _target(grpc_bridge), options=[("grpc.max_send_message_length", -1)]
    ) as opened:
        yield opened


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


def stored(receiver: ReceiverHandle) -> dict[str, dict[str, Any]]:
    clicks: dict[str, dict[str, Any]] = {}
    for conversation in ("conv-0", "conv-1"):
        response = requests.get(
            f"{receiver.url}/api/conversations/{conversation}/buttons/", timeout=5
        )
        if response.status_code == 200:
            for group in response.json()["button_events"]:
                for click in group["clicks"]:
                    clicks[click["click_id"]] = click
    return clicks


def assert_delivered(receiver: ReceiverHandle, bridge: Bridge, sent: list[Any]) -> None:
    assert bridge.exporter.force_flush(10_000)
    clicks = stored(receiver)
    assert set(clicks) == {s["click_id"] for s in sent}
    for s in sent:
        click = clicks[s["click_id"]]
        assert (click["trace_id"], click["span_id"]) == (s["trace_id"], s["span_id"])
        assert click["label"] == s["label"]
        assert click["metadata"] == {"n": int(s["value"][1:])}


def _trailers(error: Any) -> dict[str, Any]:
    return dict(error.trailing_metadata() or ())


def _stub(channel: grpc.Channel) -> Any:
    return TraceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated code


def trailing_status(error: grpc.RpcError) -> Any:
    """The ``google.rpc.Status`` of ``grpc-status-details-bin``."""
    details = _trailers(error)["grpc-status-details-bin"]
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


def _spans_request() -> ExportTraceServiceRequest:
    spans, _ = finished_spans()
    return encode_spans(spans)


def test_partial_success_for_malformed_clicks(
    receiver: ReceiverHandle, grpc_bridge: Bridge, channel: grpc.Channel
) -> None:
    spans, sent = finished_spans()
    request = encode_spans(spans)
    broken = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for event in span.events:
                    for kv in event.attributes:
                        if kv.key == "agentsight.button_label" and kv.value.string_value.endswith(
                            "1"
                        ):
                            kv.value.string_value = ""
                            broken += 1
    assert broken == 1
    answer = _stub(channel).Export(request, timeout=10)
    assert answer.partial_success.rejected_spans == 1
    assert "agentsight.button_label" in answer.partial_success.error_message
    assert grpc_bridge.exporter.force_flush(10_000)
    assert set(stored(receiver)) == {sent[0]["click_id"], sent[2]["click_id"]}


def test_a_request_without_malformed_clicks_has_no_partial_success(
    grpc_bridge: Bridge, channel: grpc.Channel
) -> None:
    answer = _stub(channel).Export(_spans_request(), timeout=10)
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
        _stub(channel).Export(request, timeout=30)
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
        request = _spans_request()
        with grpc.insecure_channel(_target(guarded)) as channel:
            stub = _stub(channel)
            for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.RpcError) as raised:
                    stub.Export(request, metadata=metadata, timeout=10)
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert guarded.stats["requests"] == 0
            stub.Export(request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
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
            grpc.insecure_channel(_target(busy)) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            _stub(channel).Export(_spans_request(), timeout=10)
        error = raised.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        status = trailing_status(error)
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "backed up" in status.message
        assert retry_delay(status) == RETRY_AFTER_SECONDS
        # The Python exporter reads the delay from its own trailer.
        info = error_details_pb2.RetryInfo()
        info.ParseFromString(_trailers(error)["google.rpc.retryinfo-bin"])
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
            grpc.insecure_channel(_target(full)) as channel,
            pytest.raises(grpc.RpcError) as raised,
        ):
            _stub(channel).Export(_spans_request(), timeout=10)
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


# -- TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found (needed to make a test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_listener_delivers_from_the_stock_exporter_and_refuses_plaintext(
    receiver: ReceiverHandle, bridge: Bridge, certificate: tuple[Path, Path]
) -> None:
    cert, key = (path.read_bytes() for path in certificate)
    listener = GrpcBridge(bridge.app.state.core, "127.0.0.1", 0, tls=(cert, key))
    listener.start()
    try:
        assert listener.url.startswith("https://")
        spans, sent = finished_spans()
        exporter = OTLPSpanExporter(
            endpoint=f"https://localhost:{listener.port}",
            credentials=grpc.ssl_channel_credentials(root_certificates=cert),
        )
        assert exporter.export(spans).name == "SUCCESS"
        assert_delivered(receiver, bridge, sent)
        with (
            grpc.insecure_channel(f"127.0.0.1:{listener.port}") as plain,
            pytest.raises(grpc.RpcError) as raised,
        ):
            _stub(plain).Export(_spans_request(), timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        listener.stop()


# -- the command ---------------------------------------------------------------------

CLI = shutil.which("agentsight-otel", path=str(Path(sys.executable).parent)) or "agentsight-otel"


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_command_serves_grpc_names_it_and_stops_cleanly(
    receiver: ReceiverHandle, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT")}
    process = subprocess.Popen(
        [CLI, "bridge", "--port", "0", "--grpc-port", "0", "--endpoint", receiver.url,
         "--api-key", API_KEY, "--spool", str(tmp_path / "cli-spool.sqlite3")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, out), daemon=True).start()
    try:
        started: list[str] = []
        while not any("OTLP/gRPC on:" in line for line in started):
            try:
                started.append(out.get(timeout=30))
            except queue.Empty:
                pytest.fail(f"no gRPC start-up line; got {started!r}")
        url = started[-1].split("OTLP/gRPC on:", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        spans, sent = finished_spans()
        assert OTLPSpanExporter(endpoint=url, insecure=True).export(spans).name == "SUCCESS"
    finally:
        process.send_signal(stop_signal)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    # Accepted means spooled: the bridge delivered before it exited.
    assert set(stored(receiver)) == {s["click_id"] for s in sent}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--grpc-port", "4319"], "--grpc-port 4319 is also the HTTP --port"),
        (["--port", "4400", "--grpc-port", "4400"], "--grpc-port 4400 is also the HTTP --port"),
        (["--grpc-tls-cert", "cert.pem"], "--grpc-tls-cert needs --grpc-port"),
        (["--grpc-port", "4317", "--grpc-tls-cert", "cert.pem"], "add --grpc-tls-key"),
        (["--grpc-port", "4317", "--grpc-tls-key", "key.pem"], "add --grpc-tls-cert"),
        (
            ["--grpc-port", "4317", "--grpc-tls-cert", "/nonexistent.pem", "--grpc-tls-key", "k"],
            "--grpc-tls-cert: cannot read '/nonexistent.pem'",
        ),
    ],
)
def test_bad_grpc_flags_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert cli.main(["bridge", "--no-spool", "--endpoint", "http://127.0.0.1:9", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_file_that_is_not_pem_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    flags = ["--grpc-port", "4317", "--grpc-tls-cert", str(junk), "--grpc-tls-key", str(junk)]
    assert cli.main(["bridge", "--no-spool", "--endpoint", "http://127.0.0.1:9", *flags]) == 2
    assert "is not PEM" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "65536", "grpc", ""])
def test_a_bad_grpc_port_exits_2(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["bridge", "--grpc-port", value])
    assert exited.value.code == 2
    assert "--grpc-port" in capsys.readouterr().err


# -- interop: grpc-go's OTLP exporter, in the real Collector --------------------------

_COLLECTOR_CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${env:APP_PORT}
exporters:
  otlp_grpc/bridge:
    endpoint: ${env:BRIDGE_GRPC}
    tls:
      insecure: true
    headers:
      authorization: "Bearer ${env:BRIDGE_TOKEN}"
    sending_queue:
      enabled: true
    retry_on_failure:
      enabled: true
      initial_interval: 100ms
      max_interval: 200ms
      max_elapsed_time: 60s
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_grpc/bridge]
    logs:
      receivers: [otlp]
      exporters: [otlp_grpc/bridge]
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def collector_to(otelcol_binary: Path, tmp_path: Path) -> Iterator[Callable[[Bridge], str]]:
    """Factory: a real Collector whose ``otlp_grpc`` exporter (grpc-go) sends
    to a bridge's gRPC listener with the token; returns its OTLP/HTTP URL."""
    running: list[subprocess.Popen[bytes]] = []

    def start(bridge: Bridge) -> str:
        config = tmp_path / "otelcol.yaml"
        config.write_text(_COLLECTOR_CONFIG)
        port = _free_port()
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "APP_PORT": str(port),
            "BRIDGE_GRPC": _target(bridge),
            "BRIDGE_TOKEN": TOKEN,
        }
        with (tmp_path / "otelcol.log").open("wb") as log:
            running.append(
                subprocess.Popen(
                    [str(otelcol_binary), "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environ,
                )
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                assert running[-1].poll() is None, (tmp_path / "otelcol.log").read_text()
                assert time.monotonic() < deadline, "the Collector did not start"
                time.sleep(0.1)

    yield start
    for process in running:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_collector_grpc_exporter_delivers_spans_and_log_records(
    receiver: ReceiverHandle, tmp_path: Path, collector_to: Callable[[Bridge], str]
) -> None:
    guarded = Bridge(receiver, tmp_path / "g.sqlite3", grpc=True, token=TOKEN)
    try:
        collector = collector_to(guarded)
        spans, sent = finished_spans()
        assert HTTPSpanExporter(endpoint=f"{collector}/v1/traces").export(spans).name == "SUCCESS"
        wait = time.monotonic() + 30
        while guarded.stats["clicks"] < len(sent):
            assert time.monotonic() < wait, guarded.stats
            time.sleep(0.05)
        assert_delivered(receiver, guarded, sent)
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(HTTPLogExporter(endpoint=f"{collector}/v1/logs"))
        )
        logger_provider.get_logger("app").emit(body="not a click", attributes={"k": "v"})
        logger_provider.shutdown()
        while guarded.stats["log_records"] < 1:
            assert time.monotonic() < wait, guarded.stats
            time.sleep(0.05)
        assert guarded.stats["log_records_without_clicks"] == 1
    finally:
        guarded.stop()


def test_collector_grpc_exporter_waits_as_retry_info_says(
    receiver: ReceiverHandle, tmp_path: Path, collector_to: Callable[[Bridge], str]
) -> None:
    """A backed-up bridge answers UNAVAILABLE with RetryInfo(5 s): grpc-go's
    exporter reads it from the status details and waits 5 s, not its own
    configured 100-200 ms."""
    busy = Bridge(receiver, tmp_path / "busy.sqlite3", grpc=True, token=TOKEN, max_backlog=0)
    try:
        collector = collector_to(busy)
        spans, _ = finished_spans()
        assert HTTPSpanExporter(endpoint=f"{collector}/v1/traces").export(spans).name == "SUCCESS"
        log_path = tmp_path / "otelcol.log"
        deadline = time.monotonic() + 30
        while "Will retry" not in log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.1)
        retry_lines = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if "Will retry" in line
        ]
        assert "UNAVAILABLE" in retry_lines[0] or "Unavailable" in retry_lines[0], retry_lines[0]
        assert '"interval": "5s"' in retry_lines[0], retry_lines[0]
    finally:
        busy.stop()


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
        with grpc.insecure_channel(_target(grpc_bridge)) as other:
            _stub(other).Export(encode_spans(spans), timeout=30)
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


def test_grpc_on_a_network_address_needs_the_token_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The gRPC listener binds --host as HTTP does, so the rule that refuses
    a non-loopback bridge without a token covers it."""
    flags = ["--host", "0.0.0.0", "--grpc-port", "0", "--no-spool"]
    assert cli.main(["bridge", *flags, "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


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
            answer = _stub(channel).Export(_spans_request(), timeout=30)
        assert not answer.HasField("partial_success")
        assert bridge.stats["clicks"] == 3
    finally:
        listener.stop()
