"""``configure(route="collector")``: the stock OTLP exporter instead of AgentSight's.

The OTLP/HTTP server is real: the project's bridge (``agentsight-otel
bridge``'s app on a loopback port) delivering to the real receiver, the hop
the Collector makes in production. The restart test keeps the bridge down
for longer than the stock exporter's default 10 s timeout, which is what
the route's 30 s timeout is for.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from agentsight_otel import AgentSightSpanExporter, InvalidSettingError, Tracker, configure
from agentsight_otel._sdk import exporter_of, span_processors
from agentsight_otel.collector_route import (
    COLLECTOR_EXPORT_TIMEOUT,
    MAX_QUEUE_SIZE,
    SCHEDULE_DELAY_MILLIS,
    stock_settings,
)
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver
from agentsight_otel.server.runner import ServerThread

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


class Bridge:
    """Receiver, the bridge's exporter, and the bridge on a reserved port."""

    def __init__(self, tmp_path: Path, started: bool = True) -> None:
        self.receiver: ReceiverHandle = running_receiver(tmp_path / "r.sqlite3", api_key=KEY)
        self.exporter = AgentSightSpanExporter(
            api_key=KEY, endpoint=self.receiver.url, spool_path=str(tmp_path / "bridge.sqlite3")
        )
        self.app = create_bridge_app(self.exporter)
        self.server = ServerThread(self.app)
        self.url = self.server.url
        if started:
            self.server.start()
        else:
            self.server.stop()  # the port is reserved; nothing listens yet

    def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.app = create_bridge_app(self.exporter)
        self.server = ServerThread(self.app, port=port)
        self.server.start()

    def stored(self) -> dict[str, str | None]:
        self.exporter.force_flush(5_000)
        return {c.click_id: c.trace_id for c in self.receiver.store.iter_clicks()}

    def stop(self) -> None:
        self.server.stop()
        self.exporter.shutdown()
        self.receiver.stop()


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "AGENTSIGHT_CLICK_SIGNAL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    running = Bridge(tmp_path)
    yield running
    running.stop()


def test_clicks_reach_the_bridge_through_the_stock_exporter(
    bridge: Bridge, otlp_env: pytest.MonkeyPatch
) -> None:
    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", bridge.url)
    provider = TracerProvider()
    processor = configure(tracer_provider=provider, route="collector")
    assert isinstance(processor, BatchSpanProcessor)
    assert isinstance(exporter_of(processor), OTLPSpanExporter)
    # No AgentSight exporter in the application on this route.
    assert not any(
        isinstance(exporter_of(p), AgentSightSpanExporter) for p in span_processors(provider)
    )
    tracker = Tracker("conv-route", tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("turn"):
        click = tracker.track_button("feedback", "Yes", "yes")
    assert provider.force_flush(30_000)
    assert bridge.stored() == {click["click_id"]: click["trace_id"]}
    # Called again (or beside OTEL_TRACES_EXPORTER=otlp): nothing added twice.
    assert configure(tracer_provider=provider, route="collector") is None
    provider.shutdown()


def _retries_refused_connections() -> bool:
    """Whether the installed stock exporter retries a refused connection
    within its timeout. Older ones (1.25) raise out of ``export()`` at once,
    so the batch is lost whatever the timeout: no setting can help there."""
    import requests

    provider = TracerProvider()
    with provider.get_tracer("probe").start_as_current_span("probe") as span:
        pass
    probe = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=0.5)
    try:
        probe.export([span])  # type: ignore[list-item]
    except requests.exceptions.ConnectionError:
        return False
    finally:
        probe.shutdown()  # type: ignore[no-untyped-call]
    return True


def test_the_timeout_outlasts_a_restart_of_the_next_hop(
    tmp_path: Path, otlp_env: pytest.MonkeyPatch
) -> None:
    """The bridge is down for 12 s, longer than the stock exporter's default
    10 s budget; with the route's 30 s the batch is still delivered."""
    if not _retries_refused_connections():
        pytest.skip(
            "this opentelemetry-exporter-otlp-proto-http drops a batch on a refused connection"
        )
    down = Bridge(tmp_path, started=False)
    try:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", down.url)
        provider = TracerProvider()
        configure(tracer_provider=provider, route="collector")
        tracker = Tracker("conv-restart", tracer_provider=provider)
        click = tracker.track_button("feedback", "No", "no")
        restart = threading.Timer(12.0, down.start)
        restart.start()
        try:
            assert provider.force_flush(60_000)
        finally:
            restart.join()
        deadline = time.monotonic() + 30
        while click["click_id"] not in down.stored() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert down.stored() == {click["click_id"]: click["trace_id"]}
        provider.shutdown()
    finally:
        down.stop()


def test_the_standard_variables_win_over_the_route_defaults() -> None:
    assert stock_settings("traces", {}) == {
        "timeout": COLLECTOR_EXPORT_TIMEOUT,
        "schedule_delay_millis": SCHEDULE_DELAY_MILLIS,
        "max_queue_size": MAX_QUEUE_SIZE,
    }
    assert COLLECTOR_EXPORT_TIMEOUT > 10  # the stock default a Collector restart outlasts
    chosen = stock_settings(
        "traces",
        {
            "OTEL_EXPORTER_OTLP_TIMEOUT": "60",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        },
    )
    assert chosen == {"timeout": None, "schedule_delay_millis": None, "max_queue_size": None}
    assert stock_settings("logs", {"OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "5"})["timeout"] is None
    assert stock_settings("logs", {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "5"})["timeout"] == 30.0


def test_route_mistakes_are_refused_before_anything_is_added(
    otlp_env: pytest.MonkeyPatch,
) -> None:
    provider = TracerProvider()
    with pytest.raises(InvalidSettingError) as refused:
        configure(tracer_provider=provider, route="otel-collector")
    assert refused.value.setting == "configure(route=...)"
    assert "'direct', 'collector'" in refused.value.rule
    with pytest.raises(TypeError, match="exporter arguments do not apply"):
        configure(tracer_provider=provider, route="collector", spool_path="/tmp/x.sqlite3")
    assert span_processors(provider) == []
    # An application that already exports over OTLP keeps its own exporter.
    own = SimpleSpanProcessor(OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    provider.add_span_processor(own)
    assert configure(tracer_provider=provider, route="collector") is None
    assert span_processors(provider) == [own]
    provider.shutdown()


def test_log_event_clicks_reach_the_bridge_through_the_stock_log_exporter(
    bridge: Bridge, otlp_env: pytest.MonkeyPatch
) -> None:
    """signal="log_event" on this route: the stock OTLP/HTTP log exporter in a
    batch processor, to the bridge's /v1/logs; no span processor is added."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from agentsight_otel._sdk import log_record_processors

    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", bridge.url)
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    processor = configure(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        route="collector",
        signal="log_event",
    )
    assert isinstance(processor, BatchLogRecordProcessor)
    assert isinstance(exporter_of(processor), OTLPLogExporter)
    assert log_record_processors(logger_provider) == [processor]
    assert span_processors(tracer_provider) == []
    tracker = Tracker("conv-route-logs", logger_provider=logger_provider, signal="log_event")
    with tracer_provider.get_tracer("app").start_as_current_span("turn"):
        click = tracker.track_button("contact_human_agent", "Create ticket", "create-ticket")
    assert logger_provider.force_flush(30_000)
    assert bridge.stored() == {click["click_id"]: click["trace_id"]}
    logger_provider.shutdown()
    tracer_provider.shutdown()


@pytest.mark.collector
@pytest.mark.timeout(300)
def test_both_signals_through_the_real_collector(
    tmp_path: Path, otelcol_binary: Path, otlp_env: pytest.MonkeyPatch
) -> None:
    """configure(route="collector", signal="both") -> the real Collector with
    the shipped collector-config.yaml -> the bridge -> the receiver: the
    click's span event and its log record each reach the bridge through
    their pipeline, and the click is stored once with its trace id."""
    import socket
    import subprocess

    from opentelemetry.sdk._logs import LoggerProvider

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    running = Bridge(tmp_path)
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTSIGHT_", "OTEL_"))}
    env.update(
        {
            "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
            "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
            "AGENTSIGHT_COLLECTOR_METRICS_HOST": "127.0.0.1",
            "AGENTSIGHT_COLLECTOR_METRICS_PORT": str(free_port()),
            "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT": f"127.0.0.1:{free_port()}",
            "AGENTSIGHT_COLLECTOR_QUEUE_DIR": str(tmp_path / "otelcol-queue"),
            "AGENTSIGHT_BRIDGE_ENDPOINT": running.url,
        }
    )
    config = Path(__file__).resolve().parents[1] / "collector-config.yaml"
    with (tmp_path / "otelcol.log").open("wb") as log_file:
        collector = subprocess.Popen(
            [str(otelcol_binary), "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(tmp_path),
        )
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    try:
        deadline = time.monotonic() + 60
        while True:  # ready when its OTLP/HTTP port takes connections
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", http_port)) == 0:
                    break
            assert collector.poll() is None, (tmp_path / "otelcol.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the Collector did not start"
            time.sleep(0.1)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{http_port}")
        configure(
            tracer_provider=tracer_provider,
            logger_provider=logger_provider,
            route="collector",
            signal="both",
        )
        tracker = Tracker(
            "conv-collector",
            tracer_provider=tracer_provider,
            logger_provider=logger_provider,
            signal="both",
        )
        with tracer_provider.get_tracer("app").start_as_current_span("turn"):
            click = tracker.track_button("feedback", "Yes", "yes")
        assert tracer_provider.force_flush(30_000) and logger_provider.force_flush(30_000)
        stats = running.app.state.stats

        def both_arrived() -> bool:
            return bool(stats["spans"] >= 1 and stats["log_records"] >= 1)

        deadline = time.monotonic() + 60
        while not both_arrived() and time.monotonic() < deadline:
            time.sleep(0.2)
        # One click on each signal, through the traces and the logs pipeline ...
        assert (stats["spans"], stats["log_records"], stats["clicks"]) == (1, 1, 2)
        # ... stored once, with its trace id.
        assert running.stored() == {click["click_id"]: click["trace_id"]}
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()
        collector.terminate()
        collector.wait(30)
        running.stop()
