"""Stamping ``gen_ai.conversation.id`` on the spans started inside ``conversation()``.

GenAI-aware backends (Langfuse, Phoenix/OpenInference sessions, vendor LLM
views) group spans by the GenAI conventions' ``gen_ai.conversation.id``.
GenAI instrumentations set it on the spans they make when they know it;
this processor sets it on every span started inside a ``conversation()``
block, so the agent's own spans (tool calls, retrieval, HTTP) are findable
by conversation too. Opt-in: ``configure(annotate_conversation_spans=True)``
installs it; a hand-built provider adds it itself::

    provider.add_span_processor(ConversationSpanProcessor())

It does no I/O and keeps no state: ``on_start`` reads one ContextVar and,
inside a block, sets one attribute.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from agentsight_otel._sdk import span_processors
from agentsight_otel.recording.conversation import (
    _active_conversation,
    _annotated_conversation,
    note_stamping_processor,
)
from agentsight_otel.semconv import GEN_AI_CONVERSATION_ID


class ConversationSpanProcessor(SpanProcessor):
    """Sets ``gen_ai.conversation.id`` on each span started inside a
    ``conversation()`` block, to the innermost block's id.

    A span that already carries ``gen_ai.conversation.id`` when it starts
    (a GenAI instrumentation passed it) keeps its own. Spans started outside
    every block are left alone, at the cost of one ContextVar read.

    Example::

        provider = TracerProvider()
        provider.add_span_processor(ConversationSpanProcessor())
        with conversation("conv-42"):
            with provider.get_tracer("agent").start_as_current_span("tool.call"):
                ...  # this span carries gen_ai.conversation.id = "conv-42"

    Args:
        every_conversation: True: stamp inside every ``conversation()``
            block. False: only inside blocks opened with
            ``conversation(id, annotate_spans=True)`` and blocks nested in
            them. Default: True.
    """

    def __init__(self, every_conversation: bool = True) -> None:
        self.every_conversation = bool(every_conversation)
        self._conversation = (
            _active_conversation if self.every_conversation else _annotated_conversation
        )
        note_stamping_processor()

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        conversation_id = self._conversation.get()
        if conversation_id is None:
            return
        attributes = span.attributes
        if attributes is None or GEN_AI_CONVERSATION_ID not in attributes:
            span.set_attribute(GEN_AI_CONVERSATION_ID, conversation_id)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def __repr__(self) -> str:
        return f"ConversationSpanProcessor(every_conversation={self.every_conversation})"


def install_conversation_stamping(provider: Any) -> ConversationSpanProcessor | None:
    """Add a ``ConversationSpanProcessor()`` to an SDK ``TracerProvider``
    unless it already has one; returns the one added, or None."""
    for processor in span_processors(provider):
        if isinstance(processor, ConversationSpanProcessor):
            return None
    processor = ConversationSpanProcessor()
    provider.add_span_processor(processor)
    return processor
