"""Recording clicks: ``track_button``, ``Tracker`` and ``conversation()``.

A click becomes one span event (``agentsight.button_click``) on the span that
is current when it happens, so it sits inside the agent's trace. Everything
here runs on the caller's thread and does no I/O: delivery is the exporter's
job, on its own thread.

A click is business data, not a sample. When the current span cannot carry
it (there is none, it was sampled out, or it is at the SDK's event limit)
the click goes on a short ``agentsight.button`` span of its own, started by
a copy of the provider's tracer whose sampler always records. That span is a
child of the current span when there is one, so the click keeps the agent's
trace id.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer

from agentsight_otel import metadata as _metadata
from agentsight_otel._sdk import (
    always_recording_tracer,
    current_span_reader,
    span_room_and_limits,
    tracer_span_limits,
)
from agentsight_otel.api_types import TrackedClick
from agentsight_otel.errors import (
    InvalidButtonError,
    MissingConversationIdError,
    TracingNotConfiguredError,
    type_name,
)
from agentsight_otel.metadata import _flatten_flat, remember_names
from agentsight_otel.semconv import (
    BAGGAGE_CONVERSATION_ID,
    BUTTON_CLICK_EVENT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_SPAN_NAME,
    BUTTON_VALUE,
    BUTTONS_CORRELATION_KEY,
    CLICK_ID,
    CONVERSATION_ID,
    METADATA_JSON,
    REQUIRED_CLICK_ATTRIBUTES,
)
from agentsight_otel.version import __version__

_TRACER_SCOPE = "agentsight_otel"

#: The conversation set by the innermost active ``conversation()`` block.
#: A ContextVar, so threads and asyncio tasks each see their own.
_active_conversation: ContextVar[Optional[str]] = ContextVar(
    "agentsight_otel_conversation_id", default=None
)


current_span = current_span_reader()


_second_cache: List[Any] = [None, ""]  # [unix second, its second_template]


def second_template(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.%06d+00:00`` for one unix second (UTC): the
    slot takes the microseconds, one-argument formatting per click instead of
    a tuple and two conversions."""
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + ".%06d+00:00"


def iso_timestamp(unix_nanos: int) -> str:
    """The ISO 8601 UTC text of an event timestamp, always with microseconds.

    Shared with the translator: ``track_button``'s returned ``timestamp`` and
    the one delivered to AgentSight are the same string by construction.
    The date part is cached per second because formatting it is most of the
    cost of a click on the caller's thread. (The exporter's batch encoder
    keeps its own: its clicks are seconds old, and sharing this one would
    make the two threads overwrite each other's second.)
    """
    seconds, nanos = divmod(unix_nanos, 1_000_000_000)
    cached = _second_cache
    if cached[0] != seconds:
        template = second_template(seconds)
        cached[1] = template  # written before the key, so a racing reader never
        cached[0] = seconds  # pairs a new second with the previous second's text
    else:
        template = cached[1]
    return template % (nanos // 1000)


class _ClickIds:
    """Unique click ids, cheaply: a random per-process prefix and a counter
    (``prefix + counter as 16 hex``, written in :meth:`Tracker.track_button`).

    64 random bits name the process, 64 counter bits the click: 32 hex
    characters, unique without a system call per click. ``os.urandom`` per
    click was a tenth of ``track_button``'s whole cost. The prefix is renewed
    in a forked child, so parent and child never share ids.
    """

    def __init__(self) -> None:
        self.renew()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()


_click_ids = _ClickIds()
_time_ns = time.time_ns


def _required(field: str, value: Any) -> str:
    if type(value) is not str:
        if value is None:
            raise InvalidButtonError(field, "is required and may not be None")
        raise InvalidButtonError(field, f"must be a string, got {type_name(value)}")
    if not value or value.isspace():
        raise InvalidButtonError(field, "is required and may not be empty or whitespace-only")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidButtonError(
                field, "must be valid Unicode text (lone surrogates cannot be sent)"
            ) from None
    return value


def _conversation_argument(value: Any) -> str:
    if type(value) is not str:
        raise InvalidButtonError(
            "conversation_id", f"must be a string when given, got {type_name(value)}"
        )
    if not value or value.isspace():
        raise InvalidButtonError("conversation_id", "may not be empty or whitespace-only")
    return _required("conversation_id", value)


def current_conversation_id() -> Optional[str]:
    """The conversation in effect here: ``conversation()`` first, then baggage."""
    active = _active_conversation.get()
    if active is not None:
        return active
    carried = baggage.get_baggage(BAGGAGE_CONVERSATION_ID)
    if isinstance(carried, str) and carried and not carried.isspace():
        return carried
    return None


class conversation:  # lower case: it reads like a function, ``with conversation(id):``
    """Set the conversation for every click recorded inside the block.

    Example::

        with conversation("conv-42"):
            track_button("contact_human_agent", "Create ticket", "create-ticket")

        async with conversation("conv-42") as conversation_id:
            ...

    The id is held in a ``ContextVar``, so each thread and asyncio task sees
    its own; blocks nest and the innermost wins. It also goes into the
    OpenTelemetry context as the W3C baggage entry
    ``agentsight.conversation_id``, so the standard propagators carry it to
    downstream services, where ``track_button`` finds it with no argument.
    An explicit ``conversation_id`` argument or a ``Tracker``'s own id takes
    precedence over the block. One object may be entered again (also
    nested); each exit restores what its enter replaced.

    Args:
        conversation_id: The AgentSight conversation id: a non-empty string,
            not whitespace-only, without lone surrogates.

    Raises:
        InvalidButtonError: ``conversation_id`` is not a string, is empty or
            whitespace-only, or is not valid Unicode text (checked when the
            object is created, before the block is entered). ``.field`` is
            ``"conversation_id"``.
    """

    __slots__ = ("_tokens", "conversation_id")

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = _conversation_argument(conversation_id)
        self._tokens: List[Tuple[Token[Optional[str]], object]] = []

    def __enter__(self) -> str:
        var_token = _active_conversation.set(self.conversation_id)
        ctx_token = otel_context.attach(
            baggage.set_baggage(BAGGAGE_CONVERSATION_ID, self.conversation_id)
        )
        self._tokens.append((var_token, ctx_token))
        return self.conversation_id

    def __exit__(self, *exc_info: object) -> None:
        var_token, ctx_token = self._tokens.pop()
        otel_context.detach(ctx_token)  # type: ignore[arg-type]
        _active_conversation.reset(var_token)

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def __repr__(self) -> str:
        return f"conversation({self.conversation_id!r})"


def _flatten_metadata(metadata: Any, attributes: Dict[str, Any]) -> None:
    """Metadata into ``attributes`` the careful way, or a clear refusal."""
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise InvalidButtonError(
            "metadata", f"must be a mapping (dict) or None, got {type_name(metadata)}"
        )
    if BUTTONS_CORRELATION_KEY in metadata:
        raise InvalidButtonError(
            f"metadata.{BUTTONS_CORRELATION_KEY}",
            "is reserved for trace correlation; use another key",
        )
    _metadata.flatten(metadata, attributes)


def _check_limits(attributes: Dict[str, Any], limits: Optional[SpanLimits]) -> Dict[str, Any]:
    """The attributes as they will fit the SDK's limits, or a clear refusal.

    The SDK silently evicts attributes past the count limit and truncates
    strings past the length limit. A click must not be cut silently, so:
    too many flattened metadata attributes -> the compact one-attribute JSON
    form; a string too long, or a limit too small for even the required
    attributes -> ``InvalidButtonError`` naming the limit and the key.
    """
    if limits is None:
        return attributes
    max_count = limits.max_event_attributes
    if limits.max_attribute_length is None and (max_count is None or len(attributes) <= max_count):
        return attributes  # the common case: no limit can bite
    if max_count is not None and len(attributes) > max_count:
        required = {key: attributes[key] for key in REQUIRED_CLICK_ATTRIBUTES}
        if len(required) + 1 > max_count and len(attributes) > len(required):
            raise InvalidButtonError(
                "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
                f"is {max_count}; a click with metadata needs at least {len(required) + 1} "
                "event attributes",
            )
        if len(required) > max_count:
            raise InvalidButtonError(
                "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
                f"is {max_count}; a click needs {len(required)} event attributes "
                f"({', '.join(REQUIRED_CLICK_ATTRIBUTES)})",
            )
        required[METADATA_JSON] = json.dumps(
            _metadata.unflatten(attributes), ensure_ascii=False, separators=(",", ":")
        )
        attributes = required
    max_length = limits.max_attribute_length
    if max_length is not None:
        for key, value in attributes.items():
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                if isinstance(item, str) and len(item) > max_length:
                    raise InvalidButtonError(
                        key,
                        f"is {len(item)} characters, over OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="
                        f"{max_length}; the SDK would truncate it",
                    )
    return attributes


class Tracker:
    """Records clicks; the object AgentSight's ``track_button`` page calls ``tracker``.

    Example::

        tracker = Tracker(conversation_id="conv-42")
        click = tracker.track_button("product_selection", "Add to Cart", "product_123")
        click["click_id"]  # '9f3c...': 32 hex characters

    A ``Tracker`` holds no connection and does no I/O: clicks become span
    events, and an ``AgentSightSpanExporter`` (see ``configure()``) delivers
    them. It is thread-safe; one instance may serve a whole application.
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

    Raises:
        InvalidButtonError: ``conversation_id`` is given but is not a string,
            is empty or whitespace-only, or is not valid Unicode text.
    """

    __slots__ = ("_always_on", "_conversation_id", "_tracer_provider")

    def __init__(
        self,
        conversation_id: Optional[str] = None,
        tracer_provider: Optional[trace.TracerProvider] = None,
    ) -> None:
        self._conversation_id = (
            None if conversation_id is None else _conversation_argument(conversation_id)
        )
        self._tracer_provider = tracer_provider
        self._always_on: Optional[Tuple[object, SdkTracer, SdkTracer]] = None

    @property
    def conversation_id(self) -> Optional[str]:
        """The conversation this tracker gives clicks without their own, or None."""
        return self._conversation_id

    def __repr__(self) -> str:
        return f"Tracker(conversation_id={self._conversation_id!r})"

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
        conversation_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> TrackedClick:
        """Record one button click as an ``agentsight.button_click`` span event.

        The click goes on the current span when it is recording and at most
        three quarters full of events (the SDK evicts a full span's oldest
        events). Otherwise (no current span, sampled out, or near the SDK's
        event limit) it goes on a short ``agentsight.button`` span of its
        own, recorded whatever the sampler says and a child of the current
        span when there is one, so it keeps the agent's trace id. No
        network or disk I/O; thread-safe; works in asyncio tasks.

        The conversation id is the first that exists of: the
        ``conversation_id`` argument; this tracker's own; the innermost
        active ``with conversation(...)`` block; the W3C baggage entry
        ``agentsight.conversation_id``. An id is never invented.

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
            ``span_id``, the hex ids of the span that carries the click.

        Raises:
            InvalidButtonError: Bad input, with ``.field`` naming the
                argument or metadata path and ``.rule`` the rule broken:
                ``button_event``, ``label`` or ``value`` missing, ``None``,
                empty, whitespace-only or not a string; a bad
                ``conversation_id``; metadata that is not JSON-like or
                over a bound above; text with lone surrogates; a string
                longer than ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (the SDK
                would cut it), or an ``OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT``
                too small for the click's own attributes. Also a
                ``ValueError``.
            MissingConversationIdError: No conversation id was found.
            TracingNotConfiguredError: The click needs its own span but no
                OpenTelemetry SDK ``TracerProvider`` is installed.

            Every error derives from ``AgentSightError``; a call that
            raises records nothing.
        """
        # Hot path: plain checks inline, the careful ones only on failure. For
        # ASCII text, strip() is falsy exactly for empty or whitespace-only
        # strings, and returns the string itself (no copy) for the usual ones.
        if not (type(button_event) is str and button_event.isascii() and button_event.strip()):
            _required("button_event", button_event)
        if not (type(label) is str and label.isascii() and label.strip()):
            _required("label", label)
        if not (type(value) is str and value.isascii() and value.strip()):
            _required("value", value)
        if conversation_id is not None:
            resolved = _conversation_argument(conversation_id)
        else:
            found = self._conversation_id or current_conversation_id()
            if found is None:
                raise MissingConversationIdError()
            resolved = found
        # Written here, not in a _ClickIds method: a call is a tenth of what
        # track_button adds to add_event. next() is atomic under the GIL, and
        # to_bytes().hex() is the cheapest hex.
        ids = _click_ids
        click_id = ids.prefix + next(ids.counter).to_bytes(8, "big").hex()
        attributes: Dict[str, Any] = {
            BUTTON_EVENT: button_event,
            BUTTON_LABEL: label,
            BUTTON_VALUE: value,
            CONVERSATION_ID: resolved,
            CLICK_ID: click_id,
        }
        # True, or the keys the fast path met for the first time: they are
        # cached below, once the click is recorded, so a refused call (a
        # megabyte key, a value over a limit) leaves no name behind.
        flat: Any = True
        if metadata is not None:
            # The common case in one call; it declines the reserved key.
            flat = type(metadata) is dict and _flatten_flat(metadata, attributes)
            if not flat:
                _flatten_metadata(metadata, attributes)
                flat = True

        now = _time_ns()
        span = current_span()
        # _room_and_limits and _check_limits, inlined for the common case
        # (they were a sixth of the cost on top of add_event): a recording
        # SDK span with room, and no limit that can bite.
        room = False
        limits: Optional[SpanLimits] = None
        if span.is_recording():
            try:
                limits = span._limits  # type: ignore[attr-defined]
                max_events = limits.max_events  # type: ignore[union-attr]
                room = max_events is None or len(span._events) < max_events - max_events // 4  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                room, limits = span_room_and_limits(span)
        if room:
            if limits is not None and (
                limits.max_attribute_length is not None
                or (
                    limits.max_event_attributes is not None
                    and len(attributes) > limits.max_event_attributes
                )
            ):
                attributes = _check_limits(attributes, limits)
            span.add_event(BUTTON_CLICK_EVENT, attributes, timestamp=now)
            carrier = span
        else:
            tracer = self._always_on_tracer()
            attributes = _check_limits(attributes, tracer_span_limits(tracer))
            carrier = tracer.start_span(BUTTON_SPAN_NAME, start_time=now)
            carrier.add_event(BUTTON_CLICK_EVENT, attributes, timestamp=now)
            carrier.end(end_time=now)
        if flat is not True:
            remember_names(flat)

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


_default_tracker = Tracker()


def track_button(
    button_event: str,
    label: str,
    value: str,
    conversation_id: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> TrackedClick:
    """Record one button click as an ``agentsight.button_click`` span event.

    The same as ``Tracker().track_button(...)``: a tracker with no
    conversation of its own, on the global tracer provider.

    The click goes on the current span when it is recording and has room;
    otherwise on a short ``agentsight.button`` span of its own, recorded
    whatever the sampler says and a child of the current span when there is
    one. No network or disk I/O; thread-safe; works in asyncio tasks.

    The conversation id is the first that exists of: the
    ``conversation_id`` argument; the innermost active
    ``with conversation(...)`` block; the W3C baggage entry
    ``agentsight.conversation_id``. An id is never invented.

    Example::

        with conversation("conv-42"):
            click = track_button("contact_human_agent", "Create ticket", "create-ticket")
        click["trace_id"]  # the agent's trace, as 32 hex characters

    Args:
        button_event: What the button group is for, e.g.
            ``"contact_human_agent"``. Buttons shown together share it.
        label: The text shown on the clicked button.
        value: The clicked button's value.
        conversation_id: The AgentSight conversation of this click.
            Default: resolved as above.
        metadata: JSON-like context (string keys; strings, booleans,
            numbers, ``None``, lists and nested mappings), at most 16 levels
            deep, 1024 values and 65,536 characters; the top-level key
            ``_agentsight`` is reserved. See :meth:`Tracker.track_button`.

    Returns:
        A ``TrackedClick`` (a plain ``dict``): ``button_event``, ``label``,
        ``value`` and ``metadata`` as given; ``conversation_id``, the one
        used; ``timestamp``, ISO 8601 UTC with microseconds; ``click_id``,
        32 hex characters, unique per click; ``trace_id`` and ``span_id``,
        the hex ids of the span that carries the click.

    Raises:
        InvalidButtonError: Bad input (also a ``ValueError``); ``.field``
            names the argument or metadata path, ``.rule`` the rule broken.
        MissingConversationIdError: No conversation id was found.
        TracingNotConfiguredError: The click needs its own span but no
            OpenTelemetry SDK ``TracerProvider`` is installed.

        A call that raises records nothing.
    """
    return _default_tracker.track_button(button_event, label, value, conversation_id, metadata)
