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
