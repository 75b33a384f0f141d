"""The bridge's gRPC listener as users run it: the command and its flags,
TLS, and the real Collector's ``otlp_grpc`` exporter (grpc-go) sending to it."""

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
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from agentsight_otel import cli
from agentsight_otel.server.grpc_bridge import GrpcBridge
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge, stored
from tests.server.grpc_support import (
    TOKEN,
    assert_delivered,
    finished_spans,
    spans_request,
    stub,
    target,
)

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
            stub(plain).Export(spans_request(), timeout=10)
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
         "--api-key", str(receiver.api_key), "--spool", str(tmp_path / "cli-spool.sqlite3")],
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
            "BRIDGE_GRPC": target(bridge),
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


def test_grpc_on_a_network_address_needs_the_token_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The gRPC listener binds --host as HTTP does, so the rule that refuses
    a non-loopback bridge without a token covers it."""
    flags = ["--host", "0.0.0.0", "--grpc-port", "0", "--no-spool"]
    assert cli.main(["bridge", *flags, "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
