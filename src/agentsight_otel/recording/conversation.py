"""Which conversation a click belongs to: ``conversation()`` blocks and baggage."""

from __future__ import annotations

from contextvars import ContextVar, Token

from opentelemetry import baggage
from opentelemetry import context as otel_context

from agentsight_otel.recording.checks import conversation_argument
from agentsight_otel.semconv import BAGGAGE_CONVERSATION_ID

#: The conversation set by the innermost active ``conversation()`` block.
#: A ContextVar, so threads and asyncio tasks each see their own.
_active_conversation: ContextVar[str | None] = ContextVar(
    "agentsight_otel_conversation_id", default=None
)


def current_conversation_id() -> str | None:
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
        self.conversation_id = conversation_argument(conversation_id)
        self._tokens: list[tuple[Token[str | None], object]] = []

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
