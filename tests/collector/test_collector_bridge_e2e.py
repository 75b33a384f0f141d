"""End to end with the real Collector running the shipped collector-config.yaml:

application (stock OTLPSpanExporter, or OTLPLogExporter for clicks recorded
as log records) -> Collector -> agentsight-otel bridge -> local receiver.
Every click arrives exactly once, with its trace id; spans without clicks
and log records that are not clicks never reach the bridge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentsight_otel import AgentSightSpanExporter, TrackedClick, Tracker
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver
from agentsight_otel.server.runner import ServerThread

KEY = "e2e-key"
TOKEN = "collector-to-bridge"
pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class Pipeline:
    """Receiver, exporter and bridge; ``started=False`` reserves the bridge's
    port but leaves it down until :meth:`start_bridge`."""

    def __init__(self, tmp_path: Path, token: str | None = TOKEN, started: bool = True) -> None:
        self.receiver: ReceiverHandle = running_receiver(tmp_path / "r.sqlite3", api_key=KEY)
        self.exporter = AgentSightSpanExporter(
            api_key=KEY, endpoint=self.receiver.url, spool_path=str(tmp_path / "spool.sqlite3")
        )
        self.token = token
        self.bridge_app = create_bridge_app(self.exporter, token=token)
        self.bridge = ServerThread(self.bridge_app)
        self.url = self.bridge.url
        if started:
            self.bridge.start()
        else:
            self.bridge.stop()  # the port is reserved; nothing listens there yet

    def start_bridge(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.bridge_app = create_bridge_app(self.exporter, token=self.token)
        self.bridge = ServerThread(self.bridge_app, port=port)
        self.bridge.start()

    def wait_for_every(self, sent: list[TrackedClick], what: str) -> None:
        def all_stored() -> bool:
            self.exporter.force_flush(2_000)
            return self.receiver.store.count_clicks() >= len(sent)

        wait_for(all_stored, 90, what)
        assert sorted(self.receiver.store.click_ids()) == sorted(s["click_id"] for s in sent)

    def stop(self) -> None:
        self.bridge.stop()
        self.exporter.shutdown()
        self.receiver.stop()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path)
    yield running
    running.stop()


def run_application(exporter: Any, clicks_per_kind: int = 5) -> list[TrackedClick]:
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-agent"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e")
    tracker = Tracker("conv-e2e", tracer_provider=provider)
    sent = []
    for n in range(clicks_per_kind):
        with tracer.start_as_current_span(f"POST /chat {n}"):  # click on the request span
            sent.append(tracker.track_button("contact_human_agent", f"Create ticket {n}", "t"))
            with tracer.start_as_current_span("llm.call") as llm:  # no click
                llm.add_event("gen_ai.content.prompt", {"text": "hello"})
        with tracer.start_as_current_span(f"GET /health {n}"):  # no click
            pass
        # No current span: the click gets its own agentsight.button span.
        sent.append(
            tracker.track_button(
                "product_selection", f"Add {n}", f"p{n}", metadata={"price": 9.5 + n}
            )
        )
    assert provider.force_flush(30_000)
    provider.shutdown()
    return sent


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_every_click_arrives_once_through_the_collector(
    start_collector: Callable[..., Any], pipeline: Pipeline, protocol: str
) -> None:
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": pipeline.bridge.url,
            "AGENTSIGHT_BRIDGE_TOKEN": TOKEN,
        }
    )
    exporter = (
        OTLPSpanExporter(endpoint=collector.http_traces_url)
        if protocol == "http/protobuf"
        else GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)
    )
    sent = run_application(exporter)
    pipeline.wait_for_every(sent, f"{len(sent)} clicks at the receiver")
    stored: dict[str, Any] = {}
    body = requests.get(
        f"{pipeline.receiver.url}/api/conversations/conv-e2e/buttons/", timeout=5
    ).json()
    for group in body["button_events"]:
        for click in group["clicks"]:
            assert click["click_id"] not in stored, "stored twice"
            stored[click["click_id"]] = click
    assert set(stored) == {s["click_id"] for s in sent}
    for s in sent:
        assert stored[s["click_id"]]["trace_id"] == s["trace_id"]
        assert stored[s["click_id"]]["span_id"] == s["span_id"]
    assert pipeline.receiver.store.count_clicks() == len(sent)
    stats = pipeline.bridge_app.state.stats
    # Spans without clicks (llm.call, GET /health) never reached the bridge.
    assert stats["spans_without_clicks"] == 0
    assert stats["spans"] == len(sent) and stats["clicks"] == len(sent)


def run_log_application(exporter: Any, clicks: int = 5) -> list[TrackedClick]:
    """Clicks recorded as log records (``Tracker(signal="log_event")``) among
    the application's own logs, exported by the stock OTLP log exporter."""
    resource = Resource.create({"service.name": "e2e-log-agent"})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    tracer_provider = TracerProvider(resource=resource)
    tracer = tracer_provider.get_tracer("e2e")
    tracker = Tracker(
        "conv-e2e-logs",
        tracer_provider=tracer_provider,
        signal="log_event",
        logger_provider=logger_provider,
    )
    app_log = logger_provider.get_logger("e2e-log-agent")
    sent = []
    try:
        for n in range(clicks):
            with tracer.start_as_current_span(f"POST /chat {n}"):
                app_log.emit(body=f"request {n} took long", severity_number=SeverityNumber.WARN)
                sent.append(tracker.track_button("contact_human_agent", f"Create ticket {n}", "t"))
                sent.append(
                    tracker.track_button("product_selection", "Add", f"p{n}", metadata={"n": n})
                )
        assert logger_provider.force_flush(30_000)
    finally:
        logger_provider.shutdown()
        tracer_provider.shutdown()
    return sent


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_log_clicks_arrive_once_through_the_collector(
    start_collector: Callable[..., Any], pipeline: Pipeline, protocol: str
) -> None:
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": pipeline.bridge.url,
            "AGENTSIGHT_BRIDGE_TOKEN": TOKEN,
        }
    )
    exporter = (
        OTLPLogExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/logs")
        if protocol == "http/protobuf"
        else GrpcLogExporter(endpoint=collector.grpc_endpoint, insecure=True)
    )
    sent = run_log_application(exporter)
    pipeline.wait_for_every(sent, f"{len(sent)} log clicks at the receiver")
    body = requests.get(
        f"{pipeline.receiver.url}/api/conversations/conv-e2e-logs/buttons/", timeout=5
    ).json()
    stored = {
        click["click_id"]: click for group in body["button_events"] for click in group["clicks"]
    }
    assert set(stored) == {s["click_id"] for s in sent}
    for s in sent:
        # Correlated with the request span the click was recorded in.
        assert stored[s["click_id"]]["trace_id"] == s["trace_id"] != "0" * 32
        assert stored[s["click_id"]]["span_id"] == s["span_id"]
    assert pipeline.receiver.store.count_clicks() == len(sent)
    stats = pipeline.bridge_app.state.stats
    # The application's own log lines never reached the bridge.
    assert stats["log_records_without_clicks"] == 0
    assert stats["log_records"] == len(sent) and stats["clicks"] == len(sent)


@pytest.fixture
def late_bridge(tmp_path: Path) -> Iterator[Pipeline]:
    pipeline = Pipeline(tmp_path, token=None, started=False)
    yield pipeline
    pipeline.stop()


def test_bridge_restart_loses_nothing(
    start_collector: Callable[..., Any], late_bridge: Pipeline
) -> None:
    """The bridge is down while the application sends: the Collector's
    sending queue retries, and once the bridge is up every click arrives."""
    collector = start_collector(env={"AGENTSIGHT_BRIDGE_ENDPOINT": late_bridge.url})
    sent = run_application(OTLPSpanExporter(endpoint=collector.http_traces_url), 3)
    wait_for(
        lambda: "agentsight_bridge" in collector.log() and "retry" in collector.log().lower(),
        60,
        "the Collector to retry the bridge",
    )
    late_bridge.start_bridge()
    late_bridge.wait_for_every(sent, "every click after the bridge came back")


def test_collector_killed_with_clicks_queued_loses_nothing(
    start_collector: Callable[..., Any], late_bridge: Pipeline
) -> None:
    """The Collector acknowledged the clicks, then died (SIGKILL) before it
    could hand them to the bridge. Its queue is on disk (file_storage), so
    the next Collector on the same directory sends every one of them."""
    env = {"AGENTSIGHT_BRIDGE_ENDPOINT": late_bridge.url}
    first = start_collector(env=env)
    sent = run_application(OTLPSpanExporter(endpoint=first.http_traces_url), 5)
    # Every export above got its 200: the clicks are the Collector's now.
    first.process.kill()
    first.process.wait(timeout=15)
    assert late_bridge.receiver.store.count_clicks() == 0
    late_bridge.start_bridge()
    start_collector(env=env)  # same tmp_path, so the same queue directory
    late_bridge.wait_for_every(sent, "every click queued by the killed Collector")


def test_collector_killed_with_log_clicks_queued_loses_nothing(
    start_collector: Callable[..., Any], late_bridge: Pipeline
) -> None:
    """The same for clicks recorded as log records: their queue (the bridge
    exporter's, for the logs signal) is on disk too."""
    env = {"AGENTSIGHT_BRIDGE_ENDPOINT": late_bridge.url}
    first = start_collector(env=env)
    sent = run_log_application(
        OTLPLogExporter(endpoint=f"http://127.0.0.1:{first.http_port}/v1/logs"), 3
    )
    first.process.kill()
    first.process.wait(timeout=15)
    assert late_bridge.receiver.store.count_clicks() == 0
    late_bridge.start_bridge()
    start_collector(env=env)
    late_bridge.wait_for_every(sent, "every log click queued by the killed Collector")
