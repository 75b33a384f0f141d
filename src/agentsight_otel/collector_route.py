"""``configure(route="collector")``: clicks leave through the stock OTLP exporters.

On this route the application sends its spans (and, for ``log_event``
clicks, its log records) to an OpenTelemetry Collector with the stock
OTLP/HTTP exporters, and the Collector (``collector-config.yaml``) routes the
clicks to ``agentsight-otel bridge``. No AgentSight exporter runs in the
application. Endpoint, headers, TLS and compression come from the standard
``OTEL_EXPORTER_OTLP_*`` variables, read by the exporters themselves.

Two defaults differ from the stock ones, because the soak showed what the
stock ones lose (RELIABILITY.md, finding 6, and bench/soak.py's collector
path), and each yields to its standard variable when that is set:

- the exporter's ``timeout`` is 30 s, not 10 s: it is the stock exporter's
  whole retry budget for a batch, and a Collector restart (stop, start-up,
  the persistent queue reopened) outlasts 10 s, after which the batch is
  dropped;
- the batch processor exports every 200 ms (not 5 s) from a queue of 65,536
  (not 2,048): what waits in that queue is lost at a crash, and a full queue
  drops silently, so it is kept short and roomy.

The timeout helps only an exporter that retries a refused connection:
older ``opentelemetry-exporter-otlp-proto-http`` releases (1.25 among them)
raise out of ``export()`` on the first refused connection, so a batch sent
while the Collector restarts is lost whatever the timeout; use a recent
exporter on this route (the soak ran 1.45). Likewise for ``log_event``
clicks: the 1.25 OTLP encoder refuses a log record without a body, which a
click log record is, and so drops the batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentsight_otel._sdk import exporter_of, log_record_processors, span_processors

if TYPE_CHECKING:  # the exporters and the Logs SDK are imported only on this route
    from opentelemetry.sdk._logs import LogRecordProcessor
    from opentelemetry.sdk.trace import SpanProcessor

logger = logging.getLogger("agentsight_otel")

DIRECT = "direct"
COLLECTOR = "collector"
ROUTES = (DIRECT, COLLECTOR)

#: Seconds the stock OTLP exporter keeps trying one batch (its whole retry
#: budget): longer than a Collector restart.
COLLECTOR_EXPORT_TIMEOUT = 30.0
#: Batch processor settings: export often, queue plenty.
SCHEDULE_DELAY_MILLIS = 200
MAX_QUEUE_SIZE = 65_536

_TIMEOUT_VARIABLES = {
    "traces": ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"),
    "logs": ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"),
}
_PROCESSOR_PREFIX = {"traces": "OTEL_BSP_", "logs": "OTEL_BLRP_"}


def route_setting(route: Any) -> str:
    """``route`` when it names a route (None: ``direct``).

    Raises:
        InvalidSettingError: Any other value, naming the argument and the routes.
    """
    from agentsight_otel.errors import InvalidSettingError, shown

    if route is None:
        return DIRECT
    if isinstance(route, str) and route.strip().lower() in ROUTES:
        return route.strip().lower()
    raise InvalidSettingError(
        "configure(route=...)",
        f"must be one of {', '.join(repr(name) for name in ROUTES)}; got {shown(route)}",
    )


def _unless_set(environ: Mapping[str, str], names: tuple[str, ...], value: float) -> float | None:
    """``value``, or None (the exporter's own reading) when a variable is set."""
    return None if any(environ.get(name, "").strip() for name in names) else value


def stock_settings(signal: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The exporter's and the batch processor's arguments for ``signal``
    (``traces`` or ``logs``); None wherever a standard variable decides."""
    prefix = _PROCESSOR_PREFIX[signal]
    return {
        "timeout": _unless_set(environ, _TIMEOUT_VARIABLES[signal], COLLECTOR_EXPORT_TIMEOUT),
        "schedule_delay_millis": _unless_set(
            environ, (prefix + "SCHEDULE_DELAY",), SCHEDULE_DELAY_MILLIS
        ),
        "max_queue_size": _unless_set(environ, (prefix + "MAX_QUEUE_SIZE",), MAX_QUEUE_SIZE),
    }


def _sends_otlp(processors: list[Any], kinds: tuple[type, ...]) -> bool:
    return any(isinstance(exporter_of(processor), kinds) for processor in processors)


def add_span_route(provider: Any) -> SpanProcessor | None:
    """A ``BatchSpanProcessor`` over the stock OTLP/HTTP span exporter on
    ``provider``; None when a processor there already exports over OTLP
    (``OTEL_TRACES_EXPORTER=otlp``, or the application's own)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if _sends_otlp(span_processors(provider), (OTLPSpanExporter, GrpcSpanExporter)):
        logger.info(
            "agentsight_otel.configure(route='collector'): the tracer provider already "
            "exports spans over OTLP; nothing added (point that exporter at the Collector)"
        )
        return None
    settings = stock_settings("traces")
    processor = BatchSpanProcessor(
        OTLPSpanExporter(timeout=settings["timeout"]),
        max_queue_size=settings["max_queue_size"],
        schedule_delay_millis=settings["schedule_delay_millis"],
    )
    provider.add_span_processor(processor)
    return processor


def add_log_route(provider: Any) -> LogRecordProcessor | None:
    """A ``BatchLogRecordProcessor`` over the stock OTLP/HTTP log exporter on
    ``provider`` (an SDK ``LoggerProvider``); None when one there already
    exports over OTLP."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    if _sends_otlp(log_record_processors(provider), (OTLPLogExporter, GrpcLogExporter)):
        logger.info(
            "agentsight_otel.configure(route='collector'): the logger provider already "
            "exports log records over OTLP; nothing added (point that exporter at the Collector)"
        )
        return None
    settings = stock_settings("logs")
    processor = BatchLogRecordProcessor(
        OTLPLogExporter(timeout=settings["timeout"]),
        max_queue_size=settings["max_queue_size"],
        schedule_delay_millis=settings["schedule_delay_millis"],
    )
    provider.add_log_record_processor(processor)
    return processor


def configure_collector_route(
    tracer_provider: Any, logger_provider: Any, signal: str
) -> SpanProcessor | LogRecordProcessor | None:
    """``configure(route="collector")``: the stock exporters for ``signal``'s
    paths. Returns what was added for spans (for ``log_event``: for logs),
    or None when the provider already exported over OTLP.

    Raises:
        TypeError: The logger provider is not the SDK's (logs path).
    """
    spans_added = add_span_route(tracer_provider) if signal != "log_event" else None
    if signal == "span_event":
        return spans_added
    from agentsight_otel.log_wiring import sdk_logger_provider

    provider = sdk_logger_provider(logger_provider, getattr(tracer_provider, "resource", None))
    logs_added = add_log_route(provider)
    return logs_added if signal == "log_event" else spans_added
