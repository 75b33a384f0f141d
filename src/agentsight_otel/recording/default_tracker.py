"""The module-level ``track_button``: one process-wide ``Tracker`` whose
settings come from the environment.

The environment is read at the first click, not at import: importing the
package must never fail, and an application (or a test) may set the
variables after importing it. A bad value raises ``InvalidSettingError``
naming the variable from every click until it is fixed, rather than
falling back to a default and recording clicks where nobody looks.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from agentsight_otel.api_types import TrackedClick
from agentsight_otel.recording.settings import settings_from_environment, signal_setting
from agentsight_otel.recording.tracker import Tracker

_default_tracker: Tracker | None = None
_default_lock = threading.Lock()
#: The signal ``configure(signal=...)`` chose, over ``AGENTSIGHT_CLICK_SIGNAL``.
_configured_signal: str | None = None


def _tracker_from_environment() -> Tracker:
    """The process-wide tracker, made at the first click from
    ``AGENTSIGHT_CLICK_SIGNAL`` and ``AGENTSIGHT_CLICK_METRICS``."""
    global _default_tracker
    with _default_lock:
        if _default_tracker is None:
            signal, click_metrics = settings_from_environment()
            _default_tracker = Tracker(
                signal=_configured_signal or signal, click_metrics=click_metrics
            )
        return _default_tracker


def use_signal(signal: str | None) -> None:
    """Make the module-level ``track_button`` record with ``signal`` from its
    next click on (``configure(signal=...)`` calls it, so the clicks take the
    path it wired); None: ``AGENTSIGHT_CLICK_SIGNAL`` again.

    Raises:
        InvalidSettingError: ``signal`` is not a signal.
    """
    global _default_tracker, _configured_signal
    checked = None if signal is None else signal_setting(signal)
    with _default_lock:
        _configured_signal = checked
        _default_tracker = None


def reset_default_tracker() -> None:
    """Forget the process-wide tracker, so the next click reads the
    environment again (for tests, and after changing the variables)."""
    global _default_tracker
    with _default_lock:
        _default_tracker = None


def track_button(
    button_event: str,
    label: str,
    value: str,
    conversation_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> TrackedClick:
    """Record one button click as an ``agentsight.button_click`` span event
    (or log record: ``AGENTSIGHT_CLICK_SIGNAL``).

    The same as ``Tracker(signal=..., click_metrics=...).track_button(...)``:
    a tracker with no conversation of its own, on the global providers,
    whose settings come from the environment at the first click:
    ``AGENTSIGHT_CLICK_SIGNAL`` (``span_event``, the default; ``log_event``;
    ``both``) and ``AGENTSIGHT_CLICK_METRICS`` (``true`` counts clicks on
    ``agentsight.button.clicks``; default ``false``). See ``Tracker``.

    A span event goes on the current span when it is recording and has
    room; otherwise on a short ``agentsight.button`` span of its own,
    recorded whatever the sampler says and a child of the current span when
    there is one. A log record carries the current span's ids. No network
    or disk I/O; thread-safe; works in asyncio tasks.

    The conversation id is the first that exists of: the
    ``conversation_id`` argument; the innermost active
    ``with conversation(...)`` block; the ``gen_ai.conversation.id``
    baggage entry; the current span's ``gen_ai.conversation.id``
    attribute; the W3C baggage entry
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
        the hex ids of the span that carries the click (in ``log_event``
        mode the current span's, all zeros when there is none).

    Raises:
        InvalidButtonError: Bad input (also a ``ValueError``); ``.field``
            names the argument or metadata path, ``.rule`` the rule broken.
        MissingConversationIdError: No conversation id was found.
        TracingNotConfiguredError: The click needs its own span but no
            OpenTelemetry SDK ``TracerProvider`` is installed.
        LoggingNotConfiguredError: The click is to be a log record but no
            OpenTelemetry SDK ``LoggerProvider`` is installed.
        InvalidSettingError: ``AGENTSIGHT_CLICK_SIGNAL`` or
            ``AGENTSIGHT_CLICK_METRICS`` has a value it cannot take (raised
            by every click until it is fixed; never at import).

        A call that raises records nothing.
    """
    tracker = _default_tracker or _tracker_from_environment()
    return tracker.track_button(button_event, label, value, conversation_id, metadata)
