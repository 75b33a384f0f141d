"""The click counter of the shipped collector-config.yaml, scraped from a real Collector.

The count connector counts every click the two AgentSight pipelines pass on
(span events and click log records) into ``agentsight.button.clicks`` by
button_event and label; a Prometheus exporter serves it. These tests send
clicks through the real SDK and the stock OTLP exporters and scrape
``/metrics`` as Prometheus would: exact counts per event and label, in
every order the clicks can arrive in, and nothing else counted.
"""

from __future__ import annotations

import threading
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentsight_otel import Tracker
from agentsight_otel.semconv import BUTTON_EVENT, BUTTON_LABEL
from tests.collector.click_counter import (
    EVENT_LABEL,
    LABEL_LABEL,
    ScrapedClickCounter,
    scrape_click_counter,
)
from tests.collector.collector_capture import (
    DELIVERY_TIMEOUT_S,
    CaptureBridge,
    attrs,
    collector_metrics,
    wait_for,
    with_optional_metrics_backend,
)
from tests.collector.log_mix import send_logs

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]

CUMULATIVE = AGGREGATION_TEMPORALITY_CUMULATIVE

#: What collector-config.yaml and examples/collector/README.md say Prometheus
#: scrapes: `agentsight.button.clicks` with the dots as underscores and the
#: counter suffix `_total`. The Grafana dashboard's test takes the name from
#: a scrape instead; this checks the documentation says the same.
DOCUMENTED_NAME = "agentsight_button_clicks_total"


def wait_for_clicks(port: int, total: float) -> ScrapedClickCounter:
    """Scrape until the counter adds up to ``total``; the last scrape."""
    latest: list[ScrapedClickCounter | None] = [None]

    def counted() -> bool:
        latest[0] = scrape_click_counter(port)
        return latest[0] is not None and latest[0].total >= total

    wait_for(counted, DELIVERY_TIMEOUT_S, f"{total} clicks on the Collector's click counter")
    assert latest[0] is not None
    return latest[0]


def assert_nothing_dropped_on_the_way(metrics_port: int) -> None:
    """delta_to_cumulative took every count and refused none (it counts
    refusals, e.g. out-of-order deltas, under an `error` label)."""
    series = {
        name: value
        for name, value in collector_metrics(metrics_port).items()
        if name.partition("{")[0] == "otelcol_deltatocumulative_datapoints"
    }
    refused = {name: value for name, value in series.items() if "error=" in name}
    assert not any(refused.values()), refused
    assert sum(series.values()) > 0, f"delta_to_cumulative saw no data point: {series}"


def span_app(endpoint: str) -> tuple[TracerProvider, Tracker]:
    """An application exporting each span on its own, as soon as it ends."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"clicks-{uuid.uuid4().hex[:8]}"})
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider, Tracker("conv-metrics", tracer_provider=provider)


def test_three_clicks_two_labels_are_counted_exactly(
    start_collector: Callable[..., Any], bridge: CaptureBridge
) -> None:
    collector = start_collector(env={"AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint})
    provider, tracker = span_app(collector.http_traces_url)
    tracer = provider.get_tracer("app")
    # The first click is on a long request span that ends (and is exported)
    # last, so the Collector counts it after two later clicks: the counter
    # must add deltas in the order they come, not the order they happened.
    request = tracer.start_span("POST /chat")
    with trace.use_span(request, end_on_exit=False):
        tracker.track_button("contact_human_agent", "Create ticket", "t1")
    # No current span: each click gets its own short span, exported at once.
    tracker.track_button("contact_human_agent", "Create ticket", "t2")
    tracker.track_button("contact_human_agent", "Call me", "t3")
    assert provider.force_flush(30_000)
    wait_for(lambda: len(bridge.spans()) >= 2, DELIVERY_TIMEOUT_S, "the two short click spans")
    request.end()
    provider.shutdown()

    counter = wait_for_clicks(collector.click_metrics_port, 3)
    assert counter.counts == {
        ("contact_human_agent", "Create ticket"): 2,
        ("contact_human_agent", "Call me"): 1,
    }
    assert counter.name == DOCUMENTED_NAME
    assert counter.type == "counter"
    assert counter.others == frozenset(), "the click endpoint serves the click counter only"
    # Only event and label (and the exporter's resource/scope labels), never
    # the per-click value, metadata or click id: cardinality.
    assert {EVENT_LABEL, LABEL_LABEL} <= counter.label_names
    assert not [n for n in counter.label_names if "value" in n or "metadata" in n or "click" in n]
    assert_nothing_dropped_on_the_way(collector.metrics_port)
    # Counted on the way to the bridge, which gets the same three clicks.
    wait_for(lambda: len(bridge.spans()) >= 3, DELIVERY_TIMEOUT_S, "three click spans")
    assert sorted(len(s.span.events) for s in bridge.spans()) == [1, 1, 1]


def test_click_log_records_count_into_the_same_counter(
    start_collector: Callable[..., Any], bridge: CaptureBridge
) -> None:
    collector = start_collector(env={"AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint})
    logs = send_logs(OTLPLogExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/logs"))
    provider, tracker = span_app(collector.http_traces_url)
    tracker.track_button("contact_human_agent", "Create ticket", "span click")
    provider.shutdown()

    expected: dict[tuple[str, str], float] = {("contact_human_agent", "Create ticket"): 1}
    for click in logs.clicks:
        key = (click.button_event, click.label)
        expected[key] = expected.get(key, 0) + 1
    counter = wait_for_clicks(collector.click_metrics_port, sum(expected.values()))
    # The log records that are not clicks (one carries button_event and a
    # label, but no click id) are not counted.
    assert counter.counts == expected
    assert counter.name == DOCUMENTED_NAME
    assert_nothing_dropped_on_the_way(collector.metrics_port)


def test_concurrent_senders_on_one_series_are_counted_exactly(
    start_collector: Callable[..., Any], bridge: CaptureBridge
) -> None:
    """Four senders with one resource (so one series per label) export click
    by click at the same time, spans and log records alike: the Collector
    gets many concurrent requests whose deltas for the same series cross.
    Every one of them must be added, none dropped as out of order."""
    collector = start_collector(env={"AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint})
    resource = Resource.create(
        {"service.name": "clicks-concurrent", "service.instance.id": uuid.uuid4().hex}
    )
    clicks_per_sender = 40
    errors: list[BaseException] = []

    def sender(n: int) -> None:
        try:
            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(
                SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_traces_url))
            )
            logger_provider = LoggerProvider(resource=resource)
            logger_provider.add_log_record_processor(
                SimpleLogRecordProcessor(
                    OTLPLogExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/logs")
                )
            )
            signal = "log_event" if n % 2 else "span_event"
            tracker = Tracker(
                "conv-concurrent",
                tracer_provider=tracer_provider,
                signal=signal,
                logger_provider=logger_provider,
            )
            for i in range(clicks_per_sender):
                tracker.track_button("product_selection", f"Label {i % 2}", f"{n}-{i}")
            tracer_provider.shutdown()
            logger_provider.shutdown()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors

    total = 4 * clicks_per_sender
    counter = wait_for_clicks(collector.click_metrics_port, total)
    assert counter.counts == {
        ("product_selection", "Label 0"): total / 2,
        ("product_selection", "Label 1"): total / 2,
    }
    assert_nothing_dropped_on_the_way(collector.metrics_port)


class MetricsBackend(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Plays an OTLP/gRPC metrics backend: keeps every request."""

    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            self, self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def Export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        with self._lock:
            self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def latest_clicks(self) -> dict[tuple[str, str], int]:
        """The last cumulative value per (button_event, label) received."""
        latest: dict[tuple[str, str], int] = {}
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name != "agentsight.button.clicks":
                            continue
                        assert m.sum.is_monotonic
                        assert m.sum.aggregation_temporality == CUMULATIVE
                        for point in m.sum.data_points:
                            labels = attrs(point.attributes)
                            key = (labels[BUTTON_EVENT], labels[BUTTON_LABEL])
                            latest[key] = point.as_int
        return latest

    def close(self) -> None:
        self._server.stop(grace=None)


def test_optional_otlp_metrics_backend_gets_the_running_total(
    start_collector: Callable[..., Any],
    bridge: CaptureBridge,
    shipped_config: Path,
    tmp_path: Path,
) -> None:
    """The documented option (the `#>` lines uncommented) sends the same
    counter, cumulative, to an OTLP metrics backend."""
    enabled = with_optional_metrics_backend(shipped_config, tmp_path)
    backend = MetricsBackend()
    try:
        collector = start_collector(
            config=enabled,
            env={
                "AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint,
                "METRICS_BACKEND_ENDPOINT": f"127.0.0.1:{backend.port}",
            },
        )
        provider, tracker = span_app(collector.http_traces_url)
        for label in ("Create ticket", "Create ticket", "Call me"):
            tracker.track_button("contact_human_agent", label, "v")
        provider.shutdown()
        expected = {
            ("contact_human_agent", "Create ticket"): 2,
            ("contact_human_agent", "Call me"): 1,
        }
        wait_for(
            lambda: backend.latest_clicks() == expected,
            DELIVERY_TIMEOUT_S,
            f"the metrics backend to get {expected}",
        )
        assert wait_for_clicks(collector.click_metrics_port, 3).counts == expected
    finally:
        backend.close()
