"""The soak's ``log+spool`` path: clicks recorded as log-based events.

The same faults as ``direct+spool`` (receiver faults and restart, the spool's
disk full, an unreadable spool record, an application SIGKILL), but each
click is one log record (``Tracker(signal="log_event")``) that a
``ClickLogRecordProcessor`` hands to an ``AgentSightLogExporter`` with a
spool, on the recording thread, as ``configure(signal="log_event")`` wires
it. bench/soak.py runs it like its other paths; this module only builds the
application side.
"""

from __future__ import annotations

from typing import Any

#: The soak's name for the path, and the worker mode that runs it.
LOG_PATH = "log+spool"
LOG_MODE = "log-spool"


def log_pipeline(
    tracer_provider: Any,
    resource: Any,
    *,
    api_key: str,
    endpoint: str,
    spool_path: str,
    timeout: float,
    retry_deadline: float,
) -> tuple[Any, Any, Any]:
    """``(tracker, exporter, logger provider)`` for one application process:
    its log clicks correlated with ``tracer_provider``'s spans, delivered
    through the spool at ``spool_path``."""
    from opentelemetry.sdk._logs import LoggerProvider

    from agentsight_otel import AgentSightLogExporter, Tracker
    from agentsight_otel.log_wiring import ClickLogRecordProcessor

    logger_provider = LoggerProvider(resource=resource)
    exporter = AgentSightLogExporter(
        api_key=api_key,
        endpoint=endpoint,
        spool_path=spool_path,
        timeout=timeout,
        retry_deadline=retry_deadline,
    )
    logger_provider.add_log_record_processor(ClickLogRecordProcessor(exporter))
    tracker = Tracker(
        tracer_provider=tracer_provider, logger_provider=logger_provider, signal="log_event"
    )
    return tracker, exporter, logger_provider
