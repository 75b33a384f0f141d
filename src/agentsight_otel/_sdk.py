"""Every read of OpenTelemetry SDK/API internals, each with a public fallback.

The rule (CONTRIBUTING.md): a private attribute of ``opentelemetry`` is read
here and nowhere else, only where the public route costs measurably more on
a hot path, and always behind a check that falls back to the public route
when the internals are not what this module expects (another SDK version,
another runtime context, a span that is not the SDK's). A test in
``tests/test_sdk_internals.py`` holds each fast path equal to its fallback.

Nothing here does I/O; importing it loads only the OpenTelemetry API/SDK.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import ALWAYS_ON


def span_room_and_limits(span: Any) -> tuple[bool, SpanLimits | None]:
    """Whether a recording span has room for one more click, and its limits.

    The SDK evicts a span's *oldest* events once it holds ``max_events``, so
    a click placed on a nearly full span could be pushed out by the
    application's later events: a span has room while it is at most three
    quarters full. The SDK offers no public count of a live span's events
    (``Span.events`` copies them into a tuple), so this reads ``_limits`` and
    ``_events``. A span that is not the SDK's has nothing to go by: room, no
    limits.
    """
    try:
        limits = span._limits
        limit = limits.max_events
        held = len(span._events)
    except (AttributeError, TypeError):  # not the SDK's span, or an SDK that moved them
        return public_span_room_and_limits(span)
    return (limit is None or held < limit - limit // 4), limits


def public_span_room_and_limits(span: Any) -> tuple[bool, SpanLimits | None]:
    """:func:`span_room_and_limits` through public attributes only: a copy of
    the events, and the limits the environment sets (``OTEL_SPAN_EVENT_COUNT_LIMIT``
    and friends), which are the span's own unless its provider was given
    ``span_limits=`` by hand. The fallback when the SDK's internals are not
    where :func:`span_room_and_limits` looks."""
    if not isinstance(span, SdkSpan):
        return True, None
    limits = SpanLimits()
    limit = limits.max_events
    held = len(span.events)
    return (limit is None or held < limit - limit // 4), limits


def tracer_span_limits(tracer: Any) -> SpanLimits | None:
    """The limits an SDK tracer gives the spans it starts, or None."""
    limits = getattr(tracer, "_span_limits", None)
    return limits if isinstance(limits, SpanLimits) else None


def always_recording_tracer(tracer: SdkTracer, previous: SdkTracer | None) -> SdkTracer:
    """``tracer`` with its sampler replaced by ``ALWAYS_ON``; ``previous``
    again when it is still an exact such copy.

    A copy shares the provider's processors, resource and limits, so a click
    span it starts is exported like any other. The SDK's public API offers no
    per-span sampling override, hence the copy. The provider pushes updates
    to the tracers it made, never to the copy, by rebinding their attributes
    (the resource re-detected in a forked child, a new tracer configuration),
    so the copy is rebuilt whenever any attribute of the original, other
    than the sampler, is no longer the very object the copy holds.
    """
    current = getattr(tracer, "__dict__", None)
    held = getattr(previous, "__dict__", None)
    if (
        previous is not None
        and current is not None  # without attribute dicts: a fresh copy every time
        and held is not None
        and len(current) == len(held)
        and all(
            held.get(name, _MISSING) is value
            for name, value in current.items()
            if name != "sampler"
        )
    ):
        return previous
    copied = copy.copy(tracer)
    copied.sampler = ALWAYS_ON
    return copied


_MISSING = object()


# --- Reading finished spans (the exporter side: wire/spans.py) ---------------


def finished_events(span: Any) -> Sequence[Any]:
    """A finished span's events, as cheaply as they can be read.

    The SDK's ``events`` property copies its ``BoundedList`` through a
    Python iterator under a lock, and this runs in ``on_end`` on the
    application's thread for every span it ends. An ended SDK span refuses
    new events, so its list no longer changes and the deque behind it is
    read directly; anything else (a span not yet ended, one that is not the
    SDK's) gets the public property.
    """
    events = getattr(getattr(span, "_events", None), "_dq", None)
    if type(events) is deque and getattr(span, "_end_time", None) is not None:
        return events
    return span.events  # type: ignore[no-any-return]


def public_finished_events(span: Any) -> Sequence[Any]:
    """:func:`finished_events` through the public property: the reference."""
    return span.events  # type: ignore[no-any-return]


def event_attributes(event: Any) -> Mapping[str, Any]:
    """An event's attributes as a plain mapping, read-only.

    The SDK's ``BoundedAttributes`` copies itself on every iteration and
    answers ``.get()`` through the Mapping ABC and its truth test through a
    Python ``__len__``; the plain dict it wraps is read instead when present
    (event attributes are immutable once recorded, so sharing it is safe).
    """
    attributes = event.attributes
    if attributes is None:
        return {}
    inner = getattr(attributes, "_dict", None)
    return inner if type(inner) is dict else attributes


def public_event_attributes(event: Any) -> Mapping[str, Any]:
    """:func:`event_attributes` through the public Mapping: the reference."""
    attributes = event.attributes
    return {} if attributes is None else dict(attributes)


# --- Delivery threads must not trace themselves --------------------------------

try:  # public in recent APIs; the SDK's own _export sets it around export()
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
except ImportError:  # pragma: no cover - older APIs used the plain string key
    _SUPPRESS_INSTRUMENTATION_KEY = "suppress_instrumentation"
SUPPRESS_INSTRUMENTATION_KEY: str = _SUPPRESS_INSTRUMENTATION_KEY


def suppress_instrumentation() -> Token[Context]:
    """Mark the calling thread's context so instrumented HTTP libraries
    (requests, urllib3, httpx) record no span for what it sends; returns the
    token ``otel_context.detach`` takes. Every delivery thread calls it first:
    otherwise each ``POST /api/ingest/`` shows up in the application's traces.
    """
    return otel_context.attach(otel_context.set_value(SUPPRESS_INSTRUMENTATION_KEY, True))


# --- What a provider already has (configure() must not add a second processor) ---


def span_processors(provider: Any) -> list[Any]:
    """The span processors an SDK ``TracerProvider`` holds, in order.

    The SDK lists them nowhere public; a provider whose internals are not
    what this expects answers ``[]`` (the fallback: nothing known, so
    ``configure()`` adds its processor, as it would to a new provider).
    """
    multi = getattr(provider, "_active_span_processor", None)
    return list(getattr(multi, "_span_processors", ()) or ())


def exporter_of(processor: Any) -> Any:
    """The exporter a span processor feeds, or None.

    ``BatchSpanProcessor`` keeps it on an inner ``BatchProcessor`` in newer
    SDKs, on itself in older ones; ``SimpleSpanProcessor`` keeps
    ``span_exporter``. Tried in that order, the public-looking name first.
    """
    for holder in (processor, getattr(processor, "_batch_processor", None)):
        if holder is None:
            continue
        for name in ("span_exporter", "_exporter", "exporter"):
            found = getattr(holder, name, None)
            if found is not None:
                return found
    return None


# --- The limits an SDK logger gives the click records it emits --------------


def logger_record_limits(logger: Any) -> tuple[int | None, int | None]:
    """``(most attributes, longest string value)`` an SDK logger applies to
    the log records it emits; None is no limit.

    Newer SDKs give each logger its provider's ``LogRecordLimits`` (which
    ``LoggerProvider(log_record_limits=...)`` may set by hand) and name it
    nowhere public, so it is read from ``_log_record_limits``. A logger
    without it (an older SDK, or not the SDK's) gets the public route: the
    limits the environment sets.
    """
    limits = getattr(logger, "_log_record_limits", None)
    if limits is None:
        return public_log_record_limits()
    try:
        return _log_limit_values(limits)
    except AttributeError:  # an SDK whose limits moved
        return public_log_record_limits()


def public_log_record_limits() -> tuple[int | None, int | None]:
    """:func:`logger_record_limits` through public names only: the limits
    the environment sets (``OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT``,
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` and friends), which are the
    provider's own unless it was given limits by hand."""
    from opentelemetry.sdk import _logs as sdk_logs

    limits_class: Any = getattr(sdk_logs, "LogRecordLimits", None) or sdk_logs.LogLimits
    return _log_limit_values(limits_class())


def _log_limit_values(limits: Any) -> tuple[int | None, int | None]:
    # LogRecordLimits names the log-record limits apart from the global
    # ones they fall back to; the older LogLimits has only the global ones.
    count: Any = getattr(limits, "max_log_record_attributes", _MISSING)
    if count is _MISSING:
        count = limits.max_attributes
    length: Any = getattr(limits, "max_log_record_attribute_length", _MISSING)
    if length is _MISSING:
        length = limits.max_attribute_length
    return count, length


# --- What a logger provider already has (configure()'s logs path) -------------


def log_record_processors(provider: Any) -> list[Any]:
    """The log record processors an SDK ``LoggerProvider`` holds, in order.

    As for spans, the SDK lists them nowhere public; a provider whose
    internals are not what this expects answers ``[]`` (nothing known, so
    ``configure()`` adds its processor). ``exporter_of`` reads the exporter
    of a log record processor too (``_exporter``, or its ``_batch_processor``'s).
    """
    multi = getattr(provider, "_multi_log_record_processor", None)
    return list(getattr(multi, "_log_record_processors", ()) or ())
