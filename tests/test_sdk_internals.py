"""Each private OpenTelemetry read in ``_sdk.py`` answers as its public fallback.

``_sdk.py`` is the only module that reads SDK internals; these tests hold
every fast path equal to the public route it stands in for, so an SDK
release that changes an internal shows up here rather than as a wrong click.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from agentsight_otel import _sdk


def own_provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


# --- A span's room for one more click ----------------------------------------


@pytest.mark.parametrize("max_events", [None, 1, 4, 8, 128])
def test_room_on_a_span_is_what_its_public_events_say(max_events: Any) -> None:
    """With the limits the SDK reads from the environment, the private read
    (``_limits``, ``len(_events)``) and the public one (``SpanLimits()``,
    ``len(span.events)``) agree at every fill level."""
    limits = SpanLimits() if max_events is None else SpanLimits(max_events=max_events)
    provider, _ = own_provider(span_limits=limits)
    span = provider.get_tracer("test").start_span("s")
    for _ in range(10):
        fast_room, fast_limits = _sdk.span_room_and_limits(span)
        held = len(span.events)  # type: ignore[attr-defined]
        limit = limits.max_events
        assert fast_room == (limit is None or held < limit - limit // 4)
        assert fast_limits is limits
        span.add_event("e")
    span.end()


def test_room_on_a_span_of_default_limits_matches_the_public_fallback() -> None:
    provider, _ = own_provider()
    span = provider.get_tracer("test").start_span("s")
    for _ in range(200):
        fast_room, fast_limits = _sdk.span_room_and_limits(span)
        public_room, public_limits = _sdk.public_span_room_and_limits(span)
        assert fast_room == public_room
        assert fast_limits is not None and public_limits is not None
        assert fast_limits.max_events == public_limits.max_events
        span.add_event("e")
    span.end()


def test_a_span_that_is_not_the_sdks_has_room_and_no_limits() -> None:
    remote = trace.NonRecordingSpan(trace.SpanContext(1, 2, is_remote=True))
    assert _sdk.span_room_and_limits(remote) == (True, None)
    assert _sdk.public_span_room_and_limits(remote) == (True, None)


def test_tracer_span_limits_are_the_providers() -> None:
    limits = SpanLimits(max_events=7, max_attribute_length=50)
    provider, _ = own_provider(span_limits=limits)
    tracer = provider.get_tracer("test")
    assert _sdk.tracer_span_limits(tracer) is limits
    span = tracer.start_span("s")
    assert _sdk.span_room_and_limits(span)[1] is limits
    span.end()
    assert _sdk.tracer_span_limits(trace.NoOpTracer()) is None


# --- The always-recording copy of a tracer -----------------------------------


def test_always_recording_tracer_records_under_a_sampler_that_drops_everything() -> None:
    provider, exporter = own_provider(sampler=ALWAYS_OFF)
    tracer = provider.get_tracer("test")
    always_on = _sdk.always_recording_tracer(tracer, None)  # type: ignore[arg-type]
    assert always_on.sampler is ALWAYS_ON and tracer.sampler is ALWAYS_OFF  # type: ignore[attr-defined]
    always_on.start_span("kept").end()
    tracer.start_span("dropped").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["kept"]


def test_always_recording_tracer_is_kept_until_the_provider_rebinds_the_original() -> None:
    provider, exporter = own_provider(resource=Resource.create({"process.pid": 1}))
    tracer = provider.get_tracer("test")
    first = _sdk.always_recording_tracer(tracer, None)  # type: ignore[arg-type]
    assert _sdk.always_recording_tracer(tracer, first) is first  # type: ignore[arg-type]
    # What the provider does in a forked child: a new resource for its tracers.
    tracer.resource = Resource.create({"process.pid": 2})  # type: ignore[attr-defined]
    second = _sdk.always_recording_tracer(tracer, first)  # type: ignore[arg-type]
    assert second is not first and second.sampler is ALWAYS_ON
    second.start_span("click").end()
    [span] = exporter.get_finished_spans()
    assert span.resource.attributes["process.pid"] == 2


def test_an_sdk_span_whose_internals_moved_gets_the_public_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An SDK span without ``_limits`` where it is read today still gets its
    room counted (through ``span.events``), not waved through."""
    provider, _ = own_provider()
    span = provider.get_tracer("test").start_span("s")
    for _ in range(100):
        span.add_event("e")
    expected_room, expected_limits = _sdk.public_span_room_and_limits(span)
    monkeypatch.setattr(span, "_limits", None)  # None.max_events: AttributeError
    room, limits = _sdk.span_room_and_limits(span)
    assert room is expected_room is False  # 100 of the default 128 events: over 3/4
    assert limits is not None and expected_limits is not None
    assert limits.max_events == expected_limits.max_events == 128
    span.end()


# --- The limits an SDK logger gives the click records it emits ----------------


@pytest.mark.parametrize(
    "environment",
    [{}, {"OTEL_ATTRIBUTE_COUNT_LIMIT": "9", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "77"}],
)
def test_logger_record_limits_are_what_the_environment_sets(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    """A provider made without limits by hand: the private read (newer SDKs:
    the logger's ``_log_record_limits``) and the public route (the limits
    class made from the environment) agree."""
    from opentelemetry.sdk._logs import LoggerProvider

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    logger = LoggerProvider().get_logger("test")
    assert _sdk.logger_record_limits(logger) == _sdk.public_log_record_limits()
    length = int(environment["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"]) if environment else None
    expected = (int(environment.get("OTEL_ATTRIBUTE_COUNT_LIMIT", 128)), length)
    assert _sdk.public_log_record_limits() == expected


def test_logger_record_limits_set_by_hand_are_the_loggers() -> None:
    """Where the SDK lets a provider take limits by hand, the private read
    sees them, and the click is fitted to what the SDK will apply."""
    from opentelemetry.sdk import _logs as sdk_logs

    if not hasattr(sdk_logs, "LogRecordLimits"):
        pytest.skip("this SDK takes no provider-wide log record limits")
    limits = sdk_logs.LogRecordLimits(max_log_record_attributes=7, max_attribute_length=50)
    logger = sdk_logs.LoggerProvider(log_record_limits=limits).get_logger("test")
    assert _sdk.logger_record_limits(logger) == (7, 50)


def test_a_logger_whose_limits_moved_gets_the_public_route() -> None:
    class Moved:
        _log_record_limits = object()  # neither the new nor the old attribute names

    assert _sdk.logger_record_limits(Moved()) == _sdk.public_log_record_limits()
    assert _sdk.logger_record_limits(object()) == _sdk.public_log_record_limits()
