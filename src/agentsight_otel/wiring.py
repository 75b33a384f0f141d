"""Putting the exporter into an OpenTelemetry SDK: ``ClickSpanProcessor`` and ``configure()``.

The SDK's ``BatchSpanProcessor`` silently evicts spans when its queue (2048
by default) is full, so a burst of clicks could be lost before any exporter
sees them. ``ClickSpanProcessor`` avoids that queue: in ``on_end`` it hands
only spans that carry click events straight to the exporter's own bounded
queue (and spool), on the caller's thread, without I/O.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from agentsight_otel._sdk import exporter_of, span_processors
from agentsight_otel.api_types import ExporterOptions
from agentsight_otel.collector_route import COLLECTOR, configure_collector_route, route_setting
from agentsight_otel.environment_variables import AGENTSIGHT_CLICK_SIGNAL
from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.logsafe import printable
from agentsight_otel.provider_order import watch_for_a_later_provider
from agentsight_otel.recording.default_tracker import use_signal
from agentsight_otel.recording.settings import LOG_EVENT, SPAN_EVENT, signal_setting
from agentsight_otel.recording.span_annotation import install_conversation_stamping
from agentsight_otel.wire.spans import compact

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:  # only annotations use it, and they are never evaluated here
    from typing_extensions import Unpack
if TYPE_CHECKING:  # the Logs SDK is imported only when the logs path is wired
    from opentelemetry.sdk._logs import LogRecordProcessor


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
    signal: str | None = None,
    logger_provider: Any = None,
    route: str | None = None,
    **exporter_arguments: Unpack[ExporterOptions],
) -> SpanProcessor | LogRecordProcessor | None:
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
        signal: Which clicks to deliver, as ``Tracker(signal=...)`` records
            them: ``"span_event"`` (a ``ClickSpanProcessor`` on the tracer
            provider), ``"log_event"`` (a ``ClickLogRecordProcessor`` on the
            logger provider) or ``"both"``. Default: ``AGENTSIGHT_CLICK_SIGNAL``,
            else ``"span_event"``. Given here, the module-level
            ``track_button`` records with it too. The two paths share one
            delivery (one queue, spool and statistics).
        logger_provider: The SDK ``LoggerProvider`` of the logs path.
            Default: the global one, created (with the tracer provider's
            resource) and set when there is none.
        route: ``"direct"`` (default): the AgentSight exporter delivers from
            this process. ``"collector"``: no AgentSight exporter here; the
            stock OTLP/HTTP exporters (spans, and log records for
            ``log_event``), configured by the standard
            ``OTEL_EXPORTER_OTLP_*`` variables, send to an OpenTelemetry
            Collector running ``collector-config.yaml``, with a 30 s export
            timeout that outlasts a Collector restart (see
            ``agentsight_otel.collector_route``).
        **exporter_arguments: Keyword arguments of ``AgentSightSpanExporter``
            (``api_key``, ``endpoint``, ``spool_path``, ``timeout``, ...),
            typed by ``agentsight_otel.ExporterOptions``: a misspelt name is
            a type error, and a ``TypeError`` at run time (even when nothing
            is added). Each unset one is read from the environment.

    Returns:
        The ``ClickSpanProcessor`` it added (for ``log_event``: the
        ``ClickLogRecordProcessor``; on ``route="collector"``: the
        ``BatchSpanProcessor`` or ``BatchLogRecordProcessor``), or ``None``
        when the provider already delivered clicks and nothing was added.

    Raises:
        TypeError: A keyword argument the exporter does not take; both
            ``exporter`` and exporter arguments (they would be ignored);
            ``tracer_provider`` is not an OpenTelemetry SDK
            ``TracerProvider``, or the global provider is some other kind
            (set by another library) and so cannot take a span processor;
            the same for a logger provider on the logs path.
            Nothing is added then. A bad setting (no API
            key, a plain ``http://`` endpoint, ...) does not raise: the
            exporter logs it once and refuses every export (see its
            ``disabled_reason``).
        InvalidSettingError: ``signal`` (or ``AGENTSIGHT_CLICK_SIGNAL``) is
            not one of the three signals, or ``route`` not one of the two;
            nothing is added.
    """
    chosen = click_signal(signal)
    to_collector = route_setting(route) == COLLECTOR
    if to_collector and (exporter is not None or exporter_arguments):
        raise TypeError(
            "configure(route='collector') sends through the Collector with the stock OTLP "
            "exporters (set by the OTEL_EXPORTER_OTLP_* variables): exporter= and "
            "AgentSight exporter arguments do not apply"
        )
    unknown = sorted(set(exporter_arguments) - set(ExporterOptions.__annotations__))
    if unknown:
        names = ", ".join(printable(repr(name), 80) for name in unknown[:5])
        raise TypeError(
            f"configure() got unexpected keyword arguments: {names}; it takes exporter, "
            "tracer_provider, annotate_conversation_spans, signal, logger_provider, route and "
            "the keyword arguments of AgentSightSpanExporter"
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
    if to_collector:
        if signal is not None:
            use_signal(chosen)
        return configure_collector_route(provider, logger_provider, chosen)
    added: ClickSpanProcessor | None = None
    if chosen != LOG_EVENT and find_agentsight(provider) is None:
        added = ClickSpanProcessor(exporter or AgentSightSpanExporter(**exporter_arguments))
        provider.add_span_processor(added)
    logs_added = None
    if chosen != SPAN_EVENT:
        from agentsight_otel.log_wiring import configure_logs  # the Logs SDK only when asked

        like = exporter or (added.exporter if added is not None else None)
        logs_added = configure_logs(provider, logger_provider, like, dict(exporter_arguments))
    if signal is not None:
        use_signal(chosen)  # the module-level track_button records what is delivered
    return logs_added if chosen == LOG_EVENT else added


def click_signal(signal: str | None) -> str:
    """``signal``, else ``AGENTSIGHT_CLICK_SIGNAL``, else ``span_event``; checked.

    Raises:
        InvalidSettingError: Not one of the three signals (naming the
            argument or the variable it came from).
    """
    if signal is not None:
        return signal_setting(signal, "configure(signal=...)")
    from_environment = os.environ.get(AGENTSIGHT_CLICK_SIGNAL) or SPAN_EVENT
    return signal_setting(from_environment, AGENTSIGHT_CLICK_SIGNAL)
