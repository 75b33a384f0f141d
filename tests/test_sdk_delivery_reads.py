"""The delivery side's private SDK reads in _sdk.py agree with their public fallbacks."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import _sdk


def test_event_attributes_read_what_the_public_mapping_gives() -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        span.add_event("e", {"a": 1, "b": ("x", "y"), "c": "text"})
        span.add_event("bare")
    events = _sdk.finished_events(span)
    assert [dict(_sdk.event_attributes(e)) for e in events] == [
        _sdk.public_event_attributes(e) for e in events
    ]
    assert tuple(_sdk.finished_events(span)) == tuple(_sdk.public_finished_events(span))


def test_suppress_instrumentation_sets_the_key_instrumentations_read() -> None:
    token = _sdk.suppress_instrumentation()
    try:
        # What opentelemetry-instrumentation's is_instrumentation_enabled() checks.
        assert otel_context.get_value(_sdk.SUPPRESS_INSTRUMENTATION_KEY) is True
    finally:
        otel_context.detach(token)
    assert otel_context.get_value(_sdk.SUPPRESS_INSTRUMENTATION_KEY) is None


def test_span_processors_and_their_exporters_are_the_ones_added() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    simple_exporter, batch_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    simple, batch = SimpleSpanProcessor(simple_exporter), BatchSpanProcessor(batch_exporter)
    provider.add_span_processor(simple)
    provider.add_span_processor(batch)
    try:
        assert _sdk.span_processors(provider) == [simple, batch]
        assert [_sdk.exporter_of(p) for p in (simple, batch)] == [simple_exporter, batch_exporter]
        # The fallback for what is not the SDK's: nothing known.
        assert _sdk.span_processors(object()) == []
        assert _sdk.exporter_of(object()) is None
    finally:
        provider.shutdown()
