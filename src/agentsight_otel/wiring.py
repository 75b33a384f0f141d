"""Putting the exporter into an OpenTelemetry SDK: ``ClickSpanProcessor`` and ``configure()``.

The SDK's ``BatchSpanProcessor`` silently evicts spans when its queue (2048
by default) is full, so a burst of clicks could be lost before any exporter
sees them. ``ClickSpanProcessor`` avoids that queue: in ``on_end`` it hands
only spans that carry click events straight to the exporter's own bounded
queue (and spool), on the caller's thread, without I/O.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from agentsight_otel._sdk import exporter_of, span_processors
from agentsight_otel.api_types import ExporterOptions
from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.logsafe import printable
from agentsight_otel.provider_order import watch_for_a_later_provider
from agentsight_otel.recording.span_annotation import install_conversation_stamping
from agentsight_otel.wire.spans import compact

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # only annotations use it, and they are never evaluated here
    from typing_extensions import Unpack


logger = logging.getLogger("agentsight_otel")


class ClickSpanProcessor(SpanProcessor):
    """Feeds click-carrying spans to an ``AgentSightSpanExporter``; ignores the rest."""

    def __init__(self, exporter: AgentSightSpanExporter) -> None:
        self.exporter = exporter

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        # The exporter keeps the span's clicks, not the span (wire/spans.py).
        found = compact(span)
        if found is not None:
            self.exporter.offer(*found)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def find_agentsight(provider: Any) -> Any | None:
    """The processor on ``provider`` that already delivers clicks, if any."""
    for processor in span_processors(provider):
        if isinstance(processor, ClickSpanProcessor):
            return processor
        if isinstance(exporter_of(processor), AgentSightSpanExporter):
            return processor
    return None


def configure(
    exporter: AgentSightSpanExporter | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    annotate_conversation_spans: bool = False,
    **exporter_arguments: Unpack[ExporterOptions],
) -> ClickSpanProcessor | None:
    """Deliver clicks from the global (or given) tracer provider to AgentSight.

    Adds a ``ClickSpanProcessor`` to the provider the application already
    has, never replacing it; sets a new SDK ``TracerProvider`` as the global
    one only when none was set. Adds nothing when the provider already
    delivers clicks (a ``ClickSpanProcessor``, or any processor whose
    exporter is an ``AgentSightSpanExporter``, e.g. from
    ``OTEL_TRACES_EXPORTER=agentsight`` under ``opentelemetry-instrument``),
    so calling it twice, or after auto-instrumentation, is harmless.

    Call it *after* the application's own ``trace.set_tracer_provider(...)``:
    OpenTelemetry keeps the first global provider, so a provider set after
    ``configure()`` set one is ignored (with its exporters); ``configure()``
    then logs a warning saying so and naming the fix.

    Example::

        agentsight_otel.configure()  # AGENTSIGHT_API_KEY etc. from the environment
        agentsight_otel.configure(spool_path="/var/lib/my-agent/agentsight.sqlite3")

    Args:
        exporter: The exporter to deliver with. Default: a new
            ``AgentSightSpanExporter(**exporter_arguments)``.
        tracer_provider: The SDK ``TracerProvider`` to add the processor to.
            Default: the global provider (created and set when there is none).
        annotate_conversation_spans: Also add a ``ConversationSpanProcessor``
            (unless the provider has one), which stamps
            ``gen_ai.conversation.id`` on every span started inside a
            ``conversation()`` block. Default: False.
        **exporter_arguments: Keyword arguments of ``AgentSightSpanExporter``
            (``api_key``, ``endpoint``, ``spool_path``, ``timeout``, ...),
            typed by ``agentsight_otel.ExporterOptions``: a misspelt name is
            a type error, and a ``TypeError`` at run time (even when nothing
            is added). Each unset one is read from the environment.

    Returns:
        The ``ClickSpanProcessor`` it added, or ``None`` when the provider
        already delivered clicks and nothing was added.

    Raises:
        TypeError: A keyword argument the exporter does not take; both
            ``exporter`` and exporter arguments (they would be ignored);
            ``tracer_provider`` is not an OpenTelemetry SDK
            ``TracerProvider``, or the global provider is some other kind
            (set by another library) and so cannot take a span processor.
            Nothing is added then. A bad setting (no API
            key, a plain ``http://`` endpoint, ...) does not raise: the
            exporter logs it once and refuses every export (see its
            ``disabled_reason``).
    """
    unknown = sorted(set(exporter_arguments) - set(ExporterOptions.__annotations__))
    if unknown:
        names = ", ".join(printable(repr(name), 80) for name in unknown[:5])
        raise TypeError(
            f"configure() got unexpected keyword arguments: {names}; it takes exporter, "
            "tracer_provider, annotate_conversation_spans and the keyword arguments of "
            "AgentSightSpanExporter"
        )
    if exporter is not None and exporter_arguments:
        raise TypeError(
            "configure() got exporter= and exporter arguments "
            f"({', '.join(sorted(exporter_arguments))}); pass one or the other"
        )
    provider: Any = tracer_provider or trace.get_tracer_provider()
    mine: TracerProvider | None = None
    if not isinstance(provider, TracerProvider):
        if tracer_provider is not None:
            raise TypeError("configure() needs an OpenTelemetry SDK TracerProvider")
        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        provider = trace.get_tracer_provider()  # another thread may have won the race
        if not isinstance(provider, TracerProvider):
            raise TypeError("the global tracer provider is not an OpenTelemetry SDK TracerProvider")
    if provider is mine:
        # OpenTelemetry keeps the first provider: an application that sets
        # its own after this is ignored. Said here (INFO: configure() alone is
        # the documented setup) and, as a warning, if that happens.
        logger.info(
            "agentsight_otel.configure(): no tracer provider was set, so a new SDK "
            "TracerProvider is now the global one; an application that sets its own "
            "must call trace.set_tracer_provider(...) before configure()"
        )
        watch_for_a_later_provider(provider)
    if annotate_conversation_spans:
        install_conversation_stamping(provider)
    if find_agentsight(provider) is not None:
        return None
    processor = ClickSpanProcessor(exporter or AgentSightSpanExporter(**exporter_arguments))
    provider.add_span_processor(processor)
    return processor
