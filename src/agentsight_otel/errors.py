"""The exceptions ``track_button`` and friends raise.

All of them derive from :class:`AgentSightError`, so an application can catch
everything this library raises with one clause. They are raised only on the
caller's thread, for the caller's own mistakes; delivery problems never
surface as exceptions (the exporter logs them instead).

A refusal describes the caller's data, which may be anything: a key whose
``repr`` raises, an int too long for ``str`` (Python refuses past 4300
digits), a megabyte-long string. :func:`shown` and :func:`type_name` describe
such values without raising, and :class:`InvalidButtonError` bounds what it
carries, so a refusal is always a short, one-line ``InvalidButtonError``.
"""

from __future__ import annotations

import reprlib

from agentsight_otel.logsafe import printable

#: Longest ``field`` (argument name or metadata path) an error carries.
MAX_FIELD_CHARS = 120
#: Longest ``rule`` an error carries.
MAX_RULE_CHARS = 320
#: Longest description of one refused value inside a rule.
MAX_SHOWN_CHARS = 80

#: The stdlib's size-bounded repr: a long string or tuple key is cut before
#: its repr is built, not after.
_repr = reprlib.Repr()
_repr.maxstring = MAX_SHOWN_CHARS
_repr.maxother = MAX_SHOWN_CHARS
_repr.maxlevel = 2


def bounded(text: str, limit: int) -> str:
    """:func:`printable`, and at most ``limit`` characters (plus "...") after
    escaping too: an escape is up to ten characters per character."""
    out = printable(text, limit)
    return out if len(out) <= limit + 3 else out[:limit] + "..."


def type_name(value: object) -> str:
    """The name of ``value``'s type, bounded; never raises (a metaclass may
    make ``__name__`` anything)."""
    try:
        name = type(value).__name__
    except Exception:
        return "<unnamed type>"
    return bounded(name, 60) if type(name) is str else "<unnamed type>"


def shown(value: object) -> str:
    """``value``'s repr for an error message: bounded, one line, and never
    raising, whatever its ``__repr__`` does."""
    if type(value) is int and value.bit_length() > 64:
        return f"<int of {value.bit_length()} bits>"  # str() of it may raise
    try:
        text = _repr.repr(value)
    except Exception:
        return f"<{type_name(value)} whose repr raised>"
    return bounded(text, MAX_SHOWN_CHARS) if type(text) is str else "<unprintable>"


class AgentSightError(Exception):
    """Base class of every exception raised by agentsight-otel."""


class InvalidButtonError(AgentSightError, ValueError):
    """A click was refused because of its input; nothing was recorded.

    Also a ``ValueError``, so code written against the original
    ``track_button`` (which raised ``ValueError`` on blanks) keeps working.
    ``field`` names the offending argument (or metadata path), ``rule`` the
    rule it broke.
    """

    def __init__(self, field: str, rule: str) -> None:
        # Both may quote the caller's data: cut and made one line here, so no
        # refusal can carry a megabyte key or a forged log line.
        self.field = bounded(field, MAX_FIELD_CHARS)
        self.rule = bounded(rule, MAX_RULE_CHARS)
        super().__init__(f"{self.field}: {self.rule}")


class MissingConversationIdError(AgentSightError):
    """No conversation id could be found for a click.

    Raised instead of inventing one: a click attached to a made-up
    conversation is worse than no click, because it looks like data.
    """

    def __init__(self) -> None:
        super().__init__(
            "no conversation_id for this click. Provide one in any of these ways: "
            "pass conversation_id=... to track_button(); create Tracker(conversation_id=...); "
            "wrap the code in `with agentsight_otel.conversation(conversation_id):`; or "
            "propagate W3C baggage 'agentsight.conversation_id' from the calling service."
        )


class TracingNotConfiguredError(AgentSightError):
    """There is no OpenTelemetry SDK tracer provider to record a click on.

    Raised only when the click cannot go on a recording span and no SDK
    ``TracerProvider`` is installed: without one, the click would vanish.
    """

    def __init__(self) -> None:
        super().__init__(
            "no OpenTelemetry SDK TracerProvider is set, so the click cannot be recorded. "
            "Call agentsight_otel.configure(), run under opentelemetry-instrument, "
            "set one with opentelemetry.trace.set_tracer_provider(...), or create "
            "Tracker(tracer_provider=...) with an SDK TracerProvider."
        )


class LoggingNotConfiguredError(AgentSightError):
    """There is no OpenTelemetry SDK logger provider to record a click on.

    Raised by a click recorded as a log-based event (``signal="log_event"``
    or ``"both"``) when no SDK ``LoggerProvider`` is installed: the Logs
    API's default provider drops every record, and a click that goes
    nowhere is a lost click.
    """

    def __init__(self) -> None:
        super().__init__(
            "no OpenTelemetry SDK LoggerProvider is set, so the click cannot be recorded as a "
            "log-based event. Call agentsight_otel.configure(), run under "
            "opentelemetry-instrument, set one with opentelemetry._logs.set_logger_provider(...), "
            "or create Tracker(logger_provider=...) with an SDK LoggerProvider "
            "(and check that OTEL_SDK_DISABLED is not true)."
        )


class InvalidSettingError(AgentSightError, ValueError):
    """A recording setting (a ``Tracker`` argument or an ``AGENTSIGHT_*``
    environment variable) has a value it cannot take; nothing was recorded.

    ``setting`` names the argument or the variable, ``rule`` the values it
    allows.
    """

    def __init__(self, setting: str, rule: str) -> None:
        self.setting = bounded(setting, MAX_FIELD_CHARS)
        self.rule = bounded(rule, MAX_RULE_CHARS)
        super().__init__(f"{self.setting}: {self.rule}")
