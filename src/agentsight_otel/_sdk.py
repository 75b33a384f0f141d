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

from contextvars import ContextVar
from typing import Any, Callable, Optional, Tuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanLimits

try:  # the key trace.set_span_in_context writes under; named by the API
    from opentelemetry.trace.propagation import _SPAN_KEY as SPAN_KEY
except ImportError:  # pragma: no cover - every supported API version has it
    SPAN_KEY = "current-span"


def public_current_span() -> trace.Span:
    """``trace.get_current_span()``: the fallback of :func:`current_span_reader`."""
    return trace.get_current_span()


def current_span_reader() -> Callable[[], trace.Span]:
    """A function answering as ``trace.get_current_span()``, cheaper when it can.

    The public call goes through four Python frames to read one ContextVar.
    With the default contextvars runtime context (every install unless
    ``OTEL_PYTHON_CONTEXT`` names another) that ContextVar is read directly;
    any other runtime context, or one swapped in later, gets the public call.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is not ContextVarsRuntimeContext or not isinstance(variable, ContextVar):
        return trace.get_current_span
    read = variable.get
    invalid = trace.INVALID_SPAN
    public = trace.get_current_span

    def current_span() -> trace.Span:
        if otel_context._RUNTIME_CONTEXT is not runtime:
            return public()
        span = read().get(SPAN_KEY)
        if type(span) is SdkSpan or isinstance(span, trace.Span):
            return span
        return invalid  # as the public call answers for no span (or not a span)

    return current_span


def span_room_and_limits(span: Any) -> Tuple[bool, Optional[SpanLimits]]:
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
    except (AttributeError, TypeError):
        return True, None
    return (limit is None or held < limit - limit // 4), limits


def public_span_room_and_limits(span: Any) -> Tuple[bool, Optional[SpanLimits]]:
    """:func:`span_room_and_limits` through public attributes only (a copy of
    the events and the environment's limits): the slow reference."""
    if not isinstance(span, SdkSpan):
        return True, None
    limits = SpanLimits()
    limit = limits.max_events
    held = len(span.events)
    return (limit is None or held < limit - limit // 4), limits


def tracer_span_limits(tracer: Any) -> Optional[SpanLimits]:
    """The limits an SDK tracer gives the spans it starts, or None."""
    limits = getattr(tracer, "_span_limits", None)
    return limits if isinstance(limits, SpanLimits) else None
