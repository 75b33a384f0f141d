"""Typed shapes of the public API: what ``track_button`` returns and what
``configure()`` accepts.

Both are ``TypedDict``\\ s, so they cost nothing at run time (a
``TrackedClick`` is the plain ``dict`` ``track_button`` always returned) and
let a type checker and an IDE know every key. Named ``api_types`` rather
than ``types`` so that running a file from this directory cannot shadow the
standard library's ``types``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, TypedDict

__all__ = ["ExporterOptions", "TrackedClick"]


class TrackedClick(TypedDict):
    """What ``track_button`` recorded for one click (every key is present).

    Attributes:
        button_event: The ``button_event`` argument, as given.
        label: The ``label`` argument, as given.
        value: The ``value`` argument, as given.
        conversation_id: The conversation the click was recorded for: the
            argument, else the ``Tracker``'s, else the innermost
            ``conversation()`` block's, else the W3C baggage entry
            ``gen_ai.conversation.id``, else the current span's
            ``gen_ai.conversation.id`` attribute, else the W3C baggage entry
            ``agentsight.conversation_id``.
        metadata: The ``metadata`` argument, as given (the same object, not
            a copy), or ``None``.
        timestamp: When the click was recorded, ISO 8601 UTC with
            microseconds (``2026-11-26T12:00:00.123456+00:00``); the same
            text AgentSight receives.
        click_id: 32 lower-case hex characters, unique per click; AgentSight
            de-duplicates redeliveries on it.
        trace_id: 32 hex characters: the trace of the span carrying the click.
        span_id: 16 hex characters: the span carrying the click (the current
            span, or the click's own ``agentsight.button`` span). A click
            recorded only as a log record (``signal="log_event"``) carries
            the current span's ids; with no current span, both are all
            zeros.
    """

    button_event: str
    label: str
    value: str
    conversation_id: str
    metadata: Optional[Mapping[str, Any]]
    timestamp: str
    click_id: str
    trace_id: str
    span_id: str


class ExporterOptions(TypedDict, total=False):
    """The keyword arguments of ``AgentSightSpanExporter``, for typing
    ``configure(**options)``.

    ``AgentSightSpanExporter.__init__`` is the source of truth (its docstring
    documents each one); a test holds the names and types here equal to it.
    """

    api_key: Optional[str]
    endpoint: Optional[str]
    environment: Optional[str]
    api: Optional[str]
    spool_path: Optional[str]
    timeout: Optional[float]
    retry_deadline: Optional[float]
    max_queue_size: Optional[int]
    max_queue_bytes: Optional[int]
    max_batch_size: Optional[int]
    max_concurrent_requests: Optional[int]
    spool_max_clicks: Optional[int]
    drop_policy: Optional[str]
    insecure: Optional[bool]
    shutdown_timeout_millis: float
