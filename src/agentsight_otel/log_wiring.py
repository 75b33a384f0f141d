"""The logs half of ``configure()``: ``ClickLogRecordProcessor`` and putting it on a provider.

The SDK's ``BatchLogRecordProcessor`` drops records when its queue (2048 by
default) is full, as its span counterpart does; ``ClickLogRecordProcessor``
avoids it the same way ``ClickSpanProcessor`` does: in ``on_emit`` it hands
only click records, compacted, straight to the exporter's bounded queue
(and spool), on the caller's thread, without I/O. Every other record costs
an attribute read.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.resources import Resource

from agentsight_otel._sdk import exporter_of, log_record_processors
from agentsight_otel.log_exporter import AgentSightLogExporter
from agentsight_otel.ratelimit import RateLimitedLogger

logger = logging.getLogger("agentsight_otel")
_warn = RateLimitedLogger(logger)


class ClickLogRecordProcessor(LogRecordProcessor):
    """Feeds click log records to an ``AgentSightLogExporter``; ignores the rest.

    Args:
        exporter: The exporter whose delivery takes the clicks.
    """

    def __init__(self, exporter: AgentSightLogExporter) -> None:
        self.exporter = exporter

    def on_emit(self, log_record: Any) -> None:
        """Queue the record if it is a click; never raises into the application."""
        try:
            self.exporter.offer((log_record,))
        except Exception as exc:
            _warn.error("log-emit-error", "AgentSight could not take a click log record: %r", exc)

    #: The name SDKs before 1.30 call (with a ``LogData``).
    emit = on_emit

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def find_agentsight_logs(provider: Any) -> Any | None:
    """The processor on ``provider`` that already delivers click log records, if any."""
    for processor in log_record_processors(provider):
        if isinstance(processor, ClickLogRecordProcessor):
            return processor
        if isinstance(exporter_of(processor), AgentSightLogExporter):
            return processor
    return None


def sdk_logger_provider(given: Any, resource: Resource | None) -> LoggerProvider:
    """``given``; else the global logger provider, an SDK one set (with
    ``resource``, the tracer provider's, so both signals describe the same
    application) when none is.

    Raises:
        TypeError: ``given``, or the global provider, is not an SDK ``LoggerProvider``.
    """
    if given is not None:
        if not isinstance(given, LoggerProvider):
            raise TypeError("configure() needs an OpenTelemetry SDK LoggerProvider")
        return given
    provider: Any = _logs.get_logger_provider()
    if not isinstance(provider, LoggerProvider):
        _logs.set_logger_provider(LoggerProvider(resource=resource))
        provider = _logs.get_logger_provider()  # another thread may have won the race
        if not isinstance(provider, LoggerProvider):
            raise TypeError("the global logger provider is not an OpenTelemetry SDK LoggerProvider")
        logger.info(
            "agentsight_otel.configure(): no logger provider was set, so a new SDK "
            "LoggerProvider is now the global one; an application that sets its own must "
            "call opentelemetry._logs.set_logger_provider(...) before configure()"
        )
    return provider


def wire_logs(
    provider: LoggerProvider, make_exporter: Callable[[], AgentSightLogExporter]
) -> ClickLogRecordProcessor | None:
    """Add a ``ClickLogRecordProcessor`` over ``make_exporter()`` to
    ``provider``; None, and nothing built, when a processor there already
    delivers click log records (``configure()`` twice, or
    ``OTEL_LOGS_EXPORTER=agentsight`` under ``opentelemetry-instrument``)."""
    if find_agentsight_logs(provider) is not None:
        return None
    processor = ClickLogRecordProcessor(make_exporter())
    provider.add_log_record_processor(processor)
    return processor


def configure_logs(
    tracer_provider: Any,
    logger_provider: Any,
    like: Any,
    exporter_arguments: dict[str, Any],
) -> ClickLogRecordProcessor | None:
    """``configure()``'s logs path: a ``ClickLogRecordProcessor`` on the given
    (or global, created when unset) SDK ``LoggerProvider``.

    Its exporter shares the delivery of ``like`` (the span exporter
    ``configure()`` was given or built) when there is one; otherwise it is
    built from ``exporter_arguments``, which shares the delivery of any
    exporter with the same settings anyway (delivery/shared.py).

    Raises:
        TypeError: The logger provider is not the SDK's.
    """
    provider = sdk_logger_provider(logger_provider, getattr(tracer_provider, "resource", None))

    def make_exporter() -> AgentSightLogExporter:
        if like is not None:
            return AgentSightLogExporter.sharing_delivery_of(like)
        return AgentSightLogExporter(**exporter_arguments)

    return wire_logs(provider, make_exporter)
