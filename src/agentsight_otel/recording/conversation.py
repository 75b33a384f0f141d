"""Which conversation a click belongs to: ``conversation()`` blocks, baggage
and the GenAI conventions' ``gen_ai.conversation.id``.

Resolution, first found wins (the explicit argument and a ``Tracker``'s own
id come before all of these, in ``Tracker.track_button``):

1. the innermost active ``conversation()`` block (a ContextVar read: the
   common case stays one lookup);
2. the W3C baggage entry ``gen_ai.conversation.id``;
3. the current span's ``gen_ai.conversation.id`` attribute, which GenAI
   instrumentations set on agent and model spans (read through the span's
   public ``attributes``);
4. the W3C baggage entry ``agentsight.conversation_id``.

Steps 2 to 4 run only when no block is active. A value that is not a
string, is empty or whitespace-only, or is not valid Unicode text is
skipped, so the next source gets its turn.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from agentsight_otel.recording.checks import conversation_argument
from agentsight_otel.semconv import (
    BAGGAGE_CONVERSATION_ID,
    BAGGAGE_GEN_AI_CONVERSATION_ID,
    GEN_AI_CONVERSATION_ID,
)

logger = logging.getLogger("agentsight_otel")

#: The conversation set by the innermost active ``conversation()`` block.
#: A ContextVar, so threads and asyncio tasks each see their own.
_active_conversation: ContextVar[str | None] = ContextVar(
    "agentsight_otel_conversation_id", default=None
)
#: The conversation to stamp on spans started here: set by a block opened
#: with ``annotate_spans=True`` and by every block nested inside one (each
#: with its own id, the one its clicks get); None elsewhere. Read by
#: ``ConversationSpanProcessor`` (recording/span_annotation.py).
_annotated_conversation: ContextVar[str | None] = ContextVar(
    "agentsight_otel_annotated_conversation_id", default=None
)
#: How many ``ConversationSpanProcessor`` objects exist: ``annotate_spans``
#: without any can stamp nothing, and says so once.
_stamping_processors = [0]
_warned_without_processor = [False]


def _usable(value: object) -> str | None:
    """``value`` when it can be a click's conversation id, else None."""
    if type(value) is not str or not value or value.isspace():
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: the wire would refuse the click
            return None
    return value


def current_conversation_id(span: object = None) -> str | None:
    """The conversation in effect here, or None; see the module docstring
    for the order (``conversation()`` first, then ``gen_ai.conversation.id``
    in baggage, on the current span, then ``agentsight.conversation_id`` in
    baggage). ``span``: the current span when the caller has already read
    it (``track_button`` has), else None to read it here if needed."""
    active = _active_conversation.get()
    if active is not None:
        return active
    return conversation_from_context(span)


def conversation_from_context(span: object = None) -> str | None:
    """The conversation the OpenTelemetry context carries, or None: the
    ``gen_ai.conversation.id`` baggage entry, the current span's
    ``gen_ai.conversation.id`` attribute, the ``agentsight.conversation_id``
    baggage entry, first usable wins. ``span``: the current span, if the
    caller has it."""
    carried = baggage.get_all()
    if carried:
        found = carried.get(BAGGAGE_GEN_AI_CONVERSATION_ID)
        if found is not None and (usable := _usable(found)) is not None:
            return usable
    # An SDK span (recording or ended) has public ``attributes``, a read-only
    # mapping; the API's non-recording span has none, and nothing to offer.
    # Duck-typed: an isinstance() test against the Mapping ABC costs more
    # than the rest of this lookup.
    if span is None:
        span = trace.get_current_span()
    attributes = getattr(span, "attributes", None)
    if attributes is not None:
        try:
            found = attributes.get(GEN_AI_CONVERSATION_ID)
        except (AttributeError, TypeError):  # not a mapping after all
            found = None
        if found is not None and (usable := _usable(found)) is not None:
            return usable
    if carried:
        return _usable(carried.get(BAGGAGE_CONVERSATION_ID))
    return None


def annotated_conversation_id() -> str | None:
    """The id ``ConversationSpanProcessor`` stamps here: that of the innermost
    block when it or a block around it was opened with ``annotate_spans=True``;
    else None."""
    return _annotated_conversation.get()


def note_stamping_processor() -> None:
    """Called by each new ``ConversationSpanProcessor``: ``annotate_spans``
    now has something to do the stamping."""
    _stamping_processors[0] += 1


class conversation:  # lower case: it reads like a function, ``with conversation(id):``
    """Set the conversation for every click recorded inside the block.

    Example::

        with conversation("conv-42"):
            track_button("contact_human_agent", "Create ticket", "create-ticket")

        async with conversation("conv-42", annotate_spans=True) as conversation_id:
            ...  # spans started here carry gen_ai.conversation.id="conv-42"

    The id is held in a ``ContextVar``, so each thread and asyncio task sees
    its own; blocks nest and the innermost wins. It also goes into the
    OpenTelemetry context as two W3C baggage entries,
    ``agentsight.conversation_id`` and the GenAI conventions'
    ``gen_ai.conversation.id``, so the standard propagators carry it to
    downstream services, where ``track_button`` finds it with no argument.
    An explicit ``conversation_id`` argument or a ``Tracker``'s own id takes
    precedence over the block. One object may be entered again (also
    nested); each exit restores what its enter replaced.

    Args:
        conversation_id: The AgentSight conversation id: a non-empty string,
            not whitespace-only, without lone surrogates.
        annotate_spans: Stamp ``gen_ai.conversation.id`` on every span
            started inside the block (and inside blocks nested in it, with
            their own ids), so the agent's spans are findable by
            conversation. Needs a ``ConversationSpanProcessor`` on the
            tracer provider (``configure(annotate_conversation_spans=True)``
            installs one that stamps inside every block; install
            ``ConversationSpanProcessor(every_conversation=False)`` by hand
            to stamp only inside these blocks); without one, a warning is
            logged once. Default: False.

    Raises:
        InvalidButtonError: ``conversation_id`` is not a string, is empty or
            whitespace-only, or is not valid Unicode text (checked when the
            object is created, before the block is entered). ``.field`` is
            ``"conversation_id"``.
    """

    __slots__ = ("_tokens", "annotate_spans", "conversation_id")

    def __init__(self, conversation_id: str, annotate_spans: bool = False) -> None:
        self.conversation_id = conversation_argument(conversation_id)
        self.annotate_spans = bool(annotate_spans)
        self._tokens: list[tuple[Token[str | None], Token[str | None] | None, object]] = []

    def __enter__(self) -> str:
        conversation_id = self.conversation_id
        var_token = _active_conversation.set(conversation_id)
        stamp_token = None
        if self.annotate_spans or _annotated_conversation.get() is not None:
            stamp_token = _annotated_conversation.set(conversation_id)
            if not _stamping_processors[0] and not _warned_without_processor[0]:
                _warned_without_processor[0] = True
                logger.warning(
                    "conversation(annotate_spans=True): no ConversationSpanProcessor exists, "
                    "so no span is stamped with gen_ai.conversation.id; call "
                    "configure(annotate_conversation_spans=True) or add "
                    "agentsight_otel.ConversationSpanProcessor() to the tracer provider"
                )
        carried = baggage.set_baggage(BAGGAGE_CONVERSATION_ID, conversation_id)
        carried = baggage.set_baggage(BAGGAGE_GEN_AI_CONVERSATION_ID, conversation_id, carried)
        ctx_token = otel_context.attach(carried)
        self._tokens.append((var_token, stamp_token, ctx_token))
        return conversation_id

    def __exit__(self, *exc_info: object) -> None:
        var_token, stamp_token, ctx_token = self._tokens.pop()
        otel_context.detach(ctx_token)  # type: ignore[arg-type]
        if stamp_token is not None:
            _annotated_conversation.reset(stamp_token)
        _active_conversation.reset(var_token)

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def __repr__(self) -> str:
        if self.annotate_spans:
            return f"conversation({self.conversation_id!r}, annotate_spans=True)"
        return f"conversation({self.conversation_id!r})"
