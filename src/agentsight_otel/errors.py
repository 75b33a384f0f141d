"""The exceptions ``track_button`` and friends raise.

All of them derive from :class:`AgentSightError`, so an application can catch
everything this library raises with one clause. They are raised only on the
caller's thread, for the caller's own mistakes; delivery problems never
surface as exceptions (the exporter logs them instead).
"""


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
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


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
            "set one with opentelemetry.trace.set_tracer_provider(...), or pass "
            "tracer_provider= to Tracer(...)."
        )
