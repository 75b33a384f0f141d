"""ClickSpanProcessor and configure(): wiring the exporter into an SDK."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker, configure
from agentsight_otel.wiring import find_agentsight
from tests.scripted_server import Reply, ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


def test_configure_adds_once_to_an_existing_provider(agentsight_server: ScriptedServer) -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    added = configure(tracer_provider=provider, api_key=KEY, endpoint=agentsight_server.url)
    assert isinstance(added, ClickSpanProcessor)
    assert configure(tracer_provider=provider, api_key=KEY, endpoint=agentsight_server.url) is None
    sent = Tracker("c", tracer_provider=provider).track_button("e", "l", "v")
    assert provider.force_flush(5_000)
    assert agentsight_server.delivered_click_ids() == [sent["click_id"]]
    assert len(memory.get_finished_spans()) == 1  # the application's own exporter still works
    provider.shutdown()


def test_configure_adds_nothing_when_the_exporter_is_already_there() -> None:
    provider = TracerProvider()
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint="http://127.0.0.1:9")
    processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    assert find_agentsight(provider) is processor
    assert configure(tracer_provider=provider) is None
    provider.shutdown()


def test_configure_sets_a_provider_only_when_none_was_set(
    agentsight_server: ScriptedServer,
) -> None:
    script = textwrap.dedent(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from agentsight_otel import configure, track_button
        added = configure(api_key="{KEY}", endpoint="{agentsight_server.url}")
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), provider
        assert added is not None
        assert configure() is None  # twice is harmless
        result = track_button("e", "l", "v", conversation_id="c-sub")
        assert provider.force_flush(5000)
        print(result["click_id"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert agentsight_server.delivered_click_ids() == [done.stdout.strip()]


def _otlp_span_count(server: ScriptedServer) -> int:
    total = 0
    for request in server.posts("/v1/traces"):
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.raw)
        total += sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)
    return total


BURST = 100_000


@pytest.mark.slow  # 100,000 clicks against a slow server: tens of seconds
def test_burst_of_100k_clicks_arrives_complete(agentsight_server: ScriptedServer) -> None:
    # A receiver that takes 20 ms per request: slow enough to back up any queue.
    agentsight_server.script = lambda request: Reply(delay=0.02)
    exporter = AgentSightSpanExporter(
        api_key=KEY, endpoint=agentsight_server.url, retry_deadline=60.0
    )
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("burst", tracer_provider=provider)
    with provider.get_tracer("t").start_as_current_span("turn"):
        sent = {tracker.track_button("e", "l", str(i))["click_id"] for i in range(BURST)}
    assert exporter.force_flush(120_000)
    delivered = agentsight_server.delivered_click_ids()
    assert len(delivered) == BURST
    assert set(delivered) == sent
    stats = exporter.statistics()
    assert stats["delivered"] == BURST and stats["dropped_queue_full"] == 0
    provider.shutdown()


@pytest.mark.slow  # 100,000 clicks against a slow server: tens of seconds
def test_same_burst_through_a_plain_batch_span_processor_loses_spans(
    agentsight_server: ScriptedServer, caplog: Any
) -> None:
    # The stock path: BatchSpanProcessor (queue 2048) + the stock OTLP exporter,
    # against the same slow loopback server. Spans are evicted silently.
    agentsight_server.script = lambda request: Reply(delay=0.02)
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=agentsight_server.url + "/v1/traces"))
    )
    tracker = Tracker("burst", tracer_provider=provider)
    for i in range(BURST):  # each click on its own span, as with no current span
        tracker.track_button("e", "l", str(i))
    provider.force_flush(60_000)
    provider.shutdown()
    received = _otlp_span_count(agentsight_server)
    assert 0 < received < BURST, received
