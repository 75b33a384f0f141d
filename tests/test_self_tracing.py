"""Bug 1 of issue 14: the exporter must not trace its own HTTP requests.

With the requests instrumentation active (as ``opentelemetry-instrument``
turns on for every application that has the package), each delivery request
used to appear as a CLIENT span in the application's own traces. Every
delivery thread now runs with the suppress-instrumentation key set, as the
SDK's own span processors do around ``export()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from tests.scripted_server import ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


@pytest.fixture
def traced_app() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, spans
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(
    "settings",
    [
        {"api": "ingest"},  # batches sent from the sender pool
        {"api": "ingest", "max_concurrent_requests": 1},  # sent by the worker itself
        {"api": "buttons"},  # the buttons pool
        {"api": "ingest", "spool": True},  # the spooler and the worker
    ],
    ids=["ingest-senders", "ingest-worker", "buttons", "spool"],
)
def test_delivery_requests_leave_no_client_span(
    traced_app: tuple[TracerProvider, InMemorySpanExporter],
    agentsight_server: ScriptedServer,
    tmp_path: Path,
    settings: dict[str, Any],
) -> None:
    provider, spans = traced_app
    arguments = dict(settings)
    if arguments.pop("spool", False):
        arguments["spool_path"] = str(tmp_path / "spool.sqlite3")
    exporter = AgentSightSpanExporter(
        api_key=KEY, endpoint=agentsight_server.url, timeout=2.0, **arguments
    )
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("conv-1", tracer_provider=provider)
    try:
        ids = [tracker.track_button("evt", f"label {i}", f"v{i}")["click_id"] for i in range(3)]
        assert exporter.force_flush(10_000)
        assert sorted(agentsight_server.delivered_click_ids()) == sorted(ids)
    finally:
        exporter.shutdown(timeout_millis=2_000)
    client = [span.name for span in spans.get_finished_spans() if span.kind is SpanKind.CLIENT]
    assert client == []


def test_the_instrumentation_does_trace_the_applications_own_requests(
    traced_app: tuple[TracerProvider, InMemorySpanExporter], agentsight_server: ScriptedServer
) -> None:
    # The control: the instrumentation is active, so the test above would see them.
    import requests

    _, spans = traced_app
    requests.get(agentsight_server.url + "/api/me/", timeout=2)
    assert [s.kind for s in spans.get_finished_spans()] == [SpanKind.CLIENT]
