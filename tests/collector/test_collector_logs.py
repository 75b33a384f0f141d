"""The shipped collector-config.yaml's logs pipelines, with a real Collector.

The stock Python ``OTLPLogExporter`` (HTTP and gRPC) in a real
``LoggerProvider`` sends click log records (``Tracker(signal="log_event")``,
and the attribute-only form of SDKs without event_name) mixed with
application logs. The stand-in bridge must get exactly the clicks on
``/v1/logs``, each with the trace and span id it was recorded in; the
``logs`` pipeline (debug exporter) sees every record.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs.export import LogRecordExporter

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, BUTTON_LABEL, CLICK_ID
from tests.collector.collector_capture import (
    DELIVERY_TIMEOUT_S,
    LOG_FILTER,
    CaptureBridge,
    collector_metrics,
    free_port,
    metric,
    wait_for,
)
from tests.collector.log_mix import LogClick, SentLogs, send_logs

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]


def wait_until_logs_filtered(metrics_port: int, sent: SentLogs) -> None:
    """Every record went through the click-log filter; only the clicks left it."""

    def through() -> bool:
        m = collector_metrics(metrics_port)
        return metric(m, "otelcol_processor_incoming_items", processor=LOG_FILTER) >= sent.total

    wait_for(through, DELIVERY_TIMEOUT_S, f"{sent.total} log records to reach {LOG_FILTER}")
    m = collector_metrics(metrics_port)
    assert metric(m, "otelcol_processor_incoming_items", processor=LOG_FILTER) == sent.total
    assert metric(m, "otelcol_processor_outgoing_items", processor=LOG_FILTER) == len(sent.clicks)


def assert_bridge_got_exactly_the_log_clicks(bridge: CaptureBridge, sent: SentLogs) -> None:
    wait_for(
        lambda: len(bridge.logs()) >= len(sent.clicks),
        DELIVERY_TIMEOUT_S,
        f"{len(sent.clicks)} click log records at the bridge",
    )
    received = bridge.logs()
    got = sorted(
        (
            LogClick(
                log.attributes[CLICK_ID],
                log.trace_id,
                log.span_id,
                log.attributes[BUTTON_EVENT],
                log.attributes[BUTTON_LABEL],
            )
            for log in received
        ),
        key=lambda c: c.click_id,
    )
    assert got == sorted(sent.clicks, key=lambda c: c.click_id)
    for log in received:
        assert log.resource.get("service.name") == sent.service_name
        assert log.record.event_name in (BUTTON_CLICK_EVENT, "")
    # The SDK filled event_name for the Tracker's clicks (this SDK has the field).
    assert sum(log.record.event_name == BUTTON_CLICK_EVENT for log in received) == 3
    # Correlated with the agent's trace: the clicks inside the span carry its ids.
    assert len({c.trace_id for c in sent.clicks if c.trace_id != "0" * 32}) == 1


def debug_exporter_log_count(log: str) -> int:
    """Log records the `debug` exporter (basic verbosity) reported in the Collector log."""
    return sum(
        int(m.group(1))
        for line in log.splitlines()
        if '"otelcol.component.id": "debug"' in line
        for m in [re.search(r'"log records": (\d+)', line)]
        if m
    )


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_only_click_log_records_reach_the_bridge(
    start_collector: Callable[..., Any], bridge: CaptureBridge, protocol: str
) -> None:
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint,
            "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
            "AGENTSIGHT_BRIDGE_TOKEN": "secret-test-key",
        }
    )
    exporter: LogRecordExporter
    if protocol == "http":
        exporter = OTLPLogExporter(
            endpoint=f"http://127.0.0.1:{collector.http_port}/v1/logs", timeout=10
        )
    else:
        exporter = GrpcLogExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=10)

    sent = send_logs(exporter)

    wait_until_logs_filtered(collector.metrics_port, sent)
    assert_bridge_got_exactly_the_log_clicks(bridge, sent)
    for request in bridge.log_requests:
        assert request.headers.get("content-encoding") == "gzip"
        assert request.headers.get("authorization") == "Bearer secret-test-key"
    assert bridge.requests == [], "log clicks went to /v1/logs only"
    # The `logs` pipeline took every record, clicks or not.
    wait_for(
        lambda: debug_exporter_log_count(collector.log()) >= sent.total,
        DELIVERY_TIMEOUT_S,
        "the debug exporter to log every record",
    )
    assert debug_exporter_log_count(collector.log()) == sent.total


def test_log_clicks_wait_for_a_bridge_that_is_down(start_collector: Callable[..., Any]) -> None:
    """Click log records ride the same on-disk queue and retries as click spans."""
    port = free_port()
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": f"http://127.0.0.1:{port}",
            "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
        }
    )
    sent = send_logs(OTLPLogExporter(endpoint=f"http://127.0.0.1:{collector.http_port}/v1/logs"))
    wait_until_logs_filtered(collector.metrics_port, sent)
    wait_for(
        lambda: any(
            "Exporting failed. Will retry" in line and "otlp_http/agentsight_bridge" in line
            for line in collector.log().splitlines()
        ),
        DELIVERY_TIMEOUT_S,
        "a failed, to-be-retried export of the log clicks",
    )
    late_bridge = CaptureBridge(port=port).start()
    try:
        assert_bridge_got_exactly_the_log_clicks(late_bridge, sent)
    finally:
        late_bridge.close()
