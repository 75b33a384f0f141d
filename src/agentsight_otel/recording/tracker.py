"""``Tracker`` and ``track_button``: one click, one span event (or log
record, or both), no I/O."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer as SdkTracer

from agentsight_otel._sdk import (
    always_recording_tracer,
    span_room_and_limits,
    tracer_span_limits,
)
from agentsight_otel.api_types import TrackedClick
from agentsight_otel.errors import MissingConversationIdError, TracingNotConfiguredError
from agentsight_otel.recording import settings
from agentsight_otel.recording.checks import (
    conversation_argument,
    fit_limits,
    flatten_metadata,
    required_text,
)
from agentsight_otel.recording.click_ids import click_ids
from agentsight_otel.recording.conversation import current_conversation_id
from agentsight_otel.recording.flatten import flatten_flat, remember_names
from agentsight_otel.semconv import (
    BUTTON_CLICK_EVENT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_SPAN_NAME,
    BUTTON_VALUE,
    CLICK_ID,
    CONVERSATION_ID,
    GEN_AI_CONVERSATION_ID,
)
from agentsight_otel.version import __version__
from agentsight_otel.wire.timestamps import iso_timestamp

if TYPE_CHECKING:
    from opentelemetry import _logs, metrics

    from agentsight_otel.recording.click_metrics import ClickCounter
    from agentsight_otel.recording.log_events import ClickLogger

_TRACER_SCOPE = "agentsight_otel"


_time_ns = time.time_ns


class Tracker:
    """Records clicks; the object AgentSight's ``track_button`` page calls ``tracker``.

    Example::

        tracker = Tracker(conversation_id="conv-42")
        click = tracker.track_button("product_selection", "Add to Cart", "product_123")
        click["click_id"]  # '9f3c...': 32 hex characters

    A ``Tracker`` holds no connection and does no I/O: clicks become span
    events or log records, and an AgentSight exporter (see ``configure()``)
    delivers them. It is thread-safe; one instance may serve a whole application.
    See :meth:`track_button` for the returned ``TrackedClick``, the
    conversation-id resolution and the errors.

    Args:
        conversation_id: The conversation of every click that does not pass
            its own ``conversation_id``; it takes precedence over an active
            ``conversation()`` block and over baggage. Default: none, so
            each click resolves its own.
        tracer_provider: The SDK ``TracerProvider`` that starts the short
            ``agentsight.button`` span a click gets when no recording span
            can carry it. Default: the global provider at the time of such
            a click.
        signal: How a click is recorded. ``"span_event"`` (default): one
            ``agentsight.button_click`` span event. ``"log_event"``: one
            ``LogRecord`` through the OpenTelemetry Logs API, with
            ``event_name="agentsight.button_click"`` (on SDKs that have the
            field), the same attributes, the click's time and the current
            span's trace id, span id and flags; not sampled, so no fallback
            span. ``"both"``: both, with the same click id (delivery stores
            the click once), for moving from one to the other.
        logger_provider: The SDK ``LoggerProvider`` of ``log_event`` clicks.
            Default: the global provider at the time of each click.
        meter_provider: The ``MeterProvider`` of the click counter.
            Default: the global provider at the time of each click.
        click_metrics: Also count each recorded click (any signal; not a
            refused call) on the counter ``agentsight.button.clicks``
            (unit ``{click}``) with the attributes
            ``agentsight.button_event`` and ``agentsight.button_label``
            only, to keep its cardinality bounded. Default: off, at no cost.
        click_metrics_with_value: Add ``agentsight.button_value`` to the
            counter's attributes: only for values from a small fixed set
            (a ``View`` with ``attribute_keys`` can drop attributes again).

    Raises:
        InvalidButtonError: ``conversation_id`` is given but is not a string,
            is empty or whitespace-only, or is not valid Unicode text.
        InvalidSettingError: ``signal`` is not one of the three above.
    """

    __slots__ = (
        "_always_on",
        "_click_counter",
        "_click_logger",
        "_conversation_id",
        "_signal",
        "_span_events",
        "_tracer_provider",
    )

    def __init__(
        self,
        conversation_id: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        signal: str = settings.SPAN_EVENT,
        logger_provider: _logs.LoggerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        click_metrics: bool = False,
        click_metrics_with_value: bool = False,
    ) -> None:
        self._conversation_id = (
            None if conversation_id is None else conversation_argument(conversation_id)
        )
        self._tracer_provider = tracer_provider
        self._always_on: tuple[object, SdkTracer, SdkTracer] | None = None
        self._signal = settings.signal_setting(signal)
        self._span_events = self._signal != settings.LOG_EVENT
        # The Logs SDK and the metrics API are imported only by trackers
        # that use them: recording span events needs neither.
        self._click_logger: ClickLogger | None = None
        if self._signal != settings.SPAN_EVENT:
            from agentsight_otel.recording.log_events import ClickLogger

            self._click_logger = ClickLogger(logger_provider)
        self._click_counter: ClickCounter | None = None
        if click_metrics:
            from agentsight_otel.recording.click_metrics import ClickCounter

            self._click_counter = ClickCounter(meter_provider, click_metrics_with_value)

    @property
    def conversation_id(self) -> str | None:
        """The conversation this tracker gives clicks without their own, or None."""
        return self._conversation_id

    @property
    def signal(self) -> str:
        """How this tracker records a click: ``span_event``, ``log_event`` or ``both``."""
        return self._signal

    def __repr__(self) -> str:
        return f"Tracker(conversation_id={self._conversation_id!r}, signal={self._signal!r})"

    def _always_on_tracer(self) -> SdkTracer:
        provider = self._tracer_provider or trace.get_tracer_provider()
        cached = self._always_on
        if cached is not None and cached[0] is provider:
            tracer, previous = cached[1], cached[2]
        else:
            found = provider.get_tracer(_TRACER_SCOPE, __version__)
            if not isinstance(found, SdkTracer):
                raise TracingNotConfiguredError()
            tracer, previous = found, None
        always_on = always_recording_tracer(tracer, previous)
        if always_on is not previous:
            self._always_on = (provider, tracer, always_on)
        return always_on

    def track_button(
        self,
        button_event: str,
        label: str,
        value: str,
        conversation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TrackedClick:
        """Record one button click as an ``agentsight.button_click`` span
        event, log record or both, as this tracker's ``signal`` says.

        A log record carries the current span's trace id, span id and flags
        (all zero when there is none) and needs no span. A span event goes
        on the current span when it is recording and at most
        three quarters full of events (the SDK evicts a full span's oldest
        events). Otherwise (no current span, sampled out, or near the SDK's
        event limit) it goes on a short ``agentsight.button`` span of its
        own, recorded whatever the sampler says and a child of the current
        span when there is one, so it keeps the agent's trace id. No
        network or disk I/O; thread-safe; works in asyncio tasks.

        The conversation id is the first that exists of: the
        ``conversation_id`` argument; this tracker's own; the innermost
        active ``with conversation(...)`` block; the W3C baggage entry
        ``gen_ai.conversation.id``; the current span's
        ``gen_ai.conversation.id`` attribute; the W3C baggage entry
        ``agentsight.conversation_id``. An id is never invented. The click
        carries it as ``agentsight.conversation_id`` and
        ``gen_ai.conversation.id``.

        Example::

            tracker.track_button(
                button_event="product_selection",
                label="Add to Cart",
                value="product_123",
                metadata={"product_name": "Wireless Headphones", "price": 99.99},
            )

        Args:
            button_event: What the button group is for, e.g.
                ``"contact_human_agent"``. Buttons shown together share it;
                AgentSight groups their clicks by it.
            label: The text shown on the clicked button.
            value: The clicked button's value.
            conversation_id: The AgentSight conversation of this click.
                Default: resolved as above.
            metadata: JSON-like context: a mapping with string keys whose
                values are strings, booleans, numbers (integers within 64
                bits, no NaN or infinities), ``None``, lists/tuples and
                nested mappings; at most 16 levels deep, 1024 values and
                65,536 characters of keys and strings. The top-level key
                ``_agentsight`` is reserved. Flattened into event
                attributes, or kept as one JSON attribute
                (``agentsight.metadata_json``) when the SDK's attribute
                count limit would otherwise drop some.

        Returns:
            A ``TrackedClick`` (a plain ``dict``) of what was recorded:
            ``button_event``, ``label``, ``value`` and ``metadata`` as given;
            ``conversation_id``, the one used; ``timestamp``, ISO 8601 UTC
            with microseconds; ``click_id``, 32 hex characters, unique per
            click (AgentSight de-duplicates on it); ``trace_id`` and
            ``span_id``, the hex ids of the span that carries the click
            (in ``log_event`` mode, the current span's: all zeros when
            there is none). The same keys in every ``signal`` mode.

        Raises:
            InvalidButtonError: Bad input, with ``.field`` naming the
                argument or metadata path and ``.rule`` the rule broken:
                ``button_event``, ``label`` or ``value`` missing, ``None``,
                empty, whitespace-only or not a string; a bad
                ``conversation_id``; metadata that is not JSON-like or
                over a bound above; text with lone surrogates; a string
                longer than ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (the SDK
                would cut it), or an ``OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT``
                too small for the click's own attributes (for a log record,
                the ``LogRecordLimits``: ``OTEL_LOGRECORD_ATTRIBUTE_*``).
                Also a ``ValueError``.
            MissingConversationIdError: No conversation id was found.
            TracingNotConfiguredError: The click needs its own span but no
                OpenTelemetry SDK ``TracerProvider`` is installed.
            LoggingNotConfiguredError: The click is to be a log record but
                no OpenTelemetry SDK ``LoggerProvider`` is installed.

            Every error derives from ``AgentSightError``; a call that
            raises records nothing.
        """
        # Hot path: plain checks inline, the careful ones only on failure. For
        # ASCII text, strip() is falsy exactly for empty or whitespace-only
        # strings, and returns the string itself (no copy) for the usual ones.
        if not (type(button_event) is str and button_event.isascii() and button_event.strip()):
            required_text("button_event", button_event)
        if not (type(label) is str and label.isascii() and label.strip()):
            required_text("label", label)
        if not (type(value) is str and value.isascii() and value.strip()):
            required_text("value", value)
        span = trace.get_current_span()  # read once: resolution may need it too
        if conversation_id is not None:
            resolved = conversation_argument(conversation_id)
        else:
            found = self._conversation_id or current_conversation_id(span)
            if found is None:
                raise MissingConversationIdError()
            resolved = found
        # Inline rather than a ClickIds method: this runs on every click, on
        # the caller's thread. next() is atomic under the GIL, and
        # to_bytes().hex() is the cheapest hex.
        ids = click_ids
        click_id = ids.prefix + next(ids.counter).to_bytes(8, "big").hex()
        attributes: dict[str, Any] = {
            BUTTON_EVENT: button_event,
            BUTTON_LABEL: label,
            BUTTON_VALUE: value,
            CONVERSATION_ID: resolved,
            CLICK_ID: click_id,
            GEN_AI_CONVERSATION_ID: resolved,  # the GenAI conventions' name, same value
        }
        # True, or the keys the fast path met for the first time: they are
        # cached below, once the click is recorded, so a refused call (a
        # megabyte key, a value over a limit) leaves no name behind.
        flat: Any = True
        if metadata is not None:
            # The common case in one call; it declines the reserved key.
            flat = type(metadata) is dict and flatten_flat(metadata, attributes)
            if not flat:
                flatten_metadata(metadata, attributes)
                flat = True

        now = _time_ns()
        click_logger = self._click_logger
        if click_logger is not None:
            # Resolved and fitted before anything is recorded, so a refusal
            # (no SDK LoggerProvider, a value over the log record limits)
            # leaves no span event behind in "both" mode.
            log_target = click_logger.target()
            log_attributes = log_target.fit(attributes)
        if self._span_events:
            # fit_limits only when a limit can bite: the common case is a
            # recording SDK span with room and no length or count limit in reach.
            if span.is_recording():
                room, limits = span_room_and_limits(span)
            else:
                room, limits = False, None
            if room:
                if limits is not None and (
                    limits.max_attribute_length is not None
                    or (
                        limits.max_event_attributes is not None
                        and len(attributes) > limits.max_event_attributes
                    )
                ):
                    attributes = fit_limits(attributes, limits)
                span.add_event(BUTTON_CLICK_EVENT, attributes, timestamp=now)
                carrier = span
            else:
                tracer = self._always_on_tracer()
                attributes = fit_limits(attributes, tracer_span_limits(tracer))
                carrier = tracer.start_span(BUTTON_SPAN_NAME, start_time=now)
                carrier.add_event(BUTTON_CLICK_EVENT, attributes, timestamp=now)
                carrier.end(end_time=now)
            if click_logger is not None:
                # "both": the record names the span that holds the event.
                log_target.emit(log_attributes, now, carrier, carrier is span)
        else:
            # "log_event": not sampled, so no fallback span; the ids are the
            # current span's, all zero when there is none.
            log_target.emit(log_attributes, now, span, True)
            carrier = span
        if flat is not True:
            remember_names(flat)
        counter = self._click_counter
        if counter is not None:
            counter.add(button_event, label, value)

        # SpanContext is a tuple (trace_id, span_id, ...) by definition; indexing
        # skips two Python-level property calls on the caller's thread.
        context = carrier.get_span_context()
        return {
            "button_event": button_event,
            "label": label,
            "value": value,
            "conversation_id": resolved,
            "metadata": metadata,
            "timestamp": iso_timestamp(now),
            "click_id": click_id,
            "trace_id": context[0].to_bytes(16, "big").hex(),
            "span_id": context[1].to_bytes(8, "big").hex(),
        }
