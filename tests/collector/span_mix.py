"""The application side of the real-Collector tests: a known mix of spans,
with and without click events, sent through the real OpenTelemetry SDK, and
the checks of what the Collector made of it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, CLICK_ID, CONVERSATION_ID
from tests.collector.collector_capture import (
    DELIVERY_TIMEOUT_S,
    OTHER_EVENT,
    SPAN_FILTER,
    CaptureBridge,
    attrs,
    collector_metrics,
    metric,
    wait_for,
)

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
