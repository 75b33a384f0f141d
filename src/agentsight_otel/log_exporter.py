"""``AgentSightLogExporter``: clicks recorded as log-based events, delivered to AgentSight.

The log-record counterpart of ``AgentSightSpanExporter``: the same settings,
the same environment variables, and the same delivery (exporter_base.py
leases the process's one delivery for its settings, so a span exporter and a
log exporter with equal settings share the queue, the spool, the retries and
the statistics). It keeps the click log records of a batch (wire/logs.py:
``event_name == "agentsight.button_click"``, or both identifying attributes
where the SDK has no event name) and ignores every other record for the
cost of an attribute read.

The SDK renamed its exporter interface: ``LogRecordExporter`` and
``LogRecordExportResult`` since 1.36, ``LogExporter`` and ``LogExportResult``
before (1.25 hands ``LogData`` objects, newer SDKs ``ReadableLogRecord``);
the newest names present are used, and wire/logs.py reads both shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._logs import export as _log_export

from agentsight_otel.exporter_base import DEFAULT_SHUTDOWN_TIMEOUT_MILLIS, DeliveringExporter
from agentsight_otel.wire.logs import LogClicks, compact_logs

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter as LogExporterBase
    from opentelemetry.sdk._logs.export import LogRecordExportResult as LogExportResult
else:  # the deprecated older names only where the new ones are missing (SDK < 1.36)
    LogExporterBase = getattr(_log_export, "LogRecordExporter", None) or _log_export.LogExporter
    LogExportResult = (
        getattr(_log_export, "LogRecordExportResult", None) or _log_export.LogExportResult
    )

__all__ = ["AgentSightLogExporter"]


class AgentSightLogExporter(DeliveringExporter, LogExporterBase):
    """An OpenTelemetry log record exporter that delivers clicks to AgentSight.

    Clicks recorded as log-based events (``Tracker(signal="log_event")``)
    reach AgentSight as exactly the same ingest records as clicks recorded
    as span events. Every other log record is ignored. Use it under any log
    record processor (``configure(signal="log_event")`` adds a
    ``ClickLogRecordProcessor``, which bypasses the ``BatchLogRecordProcessor``
    queue that drops records when full); ``OTEL_LOGS_EXPORTER=agentsight``
    builds it with no arguments under ``opentelemetry-instrument``.

    It shares its delivery with every AgentSight exporter of the same
    settings in the process (one queue, one spool, one set of retries and
    statistics): with ``OTEL_TRACES_EXPORTER=agentsight`` and
    ``OTEL_LOGS_EXPORTER=agentsight`` together, the spool is opened once,
    the delivery stops when the last of the two shuts down, and a click
    recorded on both signals (``signal="both"``) is queued once.

    Example::

        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(AgentSightLogExporter(spool_path="/var/lib/app/agentsight.db"))
        )

    Args:
        api_key, endpoint, environment, api, spool_path, timeout,
        retry_deadline, max_queue_size, max_queue_bytes, max_batch_size,
        max_concurrent_requests, spool_max_clicks, drop_policy, insecure,
        shutdown_timeout_millis: As for ``AgentSightSpanExporter`` (read from
            the same environment variables when ``None``).

    Raises:
        TypeError: An unknown keyword argument. Nothing else: a setting
            that cannot work is logged once, ``disabled_reason`` says why,
            and every export is refused; delivery failures are logged
            (rate-limited) and counted, never raised into the application.
    """

    _signal_kind = "logs"

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        environment: str | None = None,
        api: str | None = None,
        spool_path: str | None = None,
        *,
        timeout: float | None = None,
        retry_deadline: float | None = None,
        max_queue_size: int | None = None,
        max_queue_bytes: int | None = None,
        max_batch_size: int | None = None,
        max_concurrent_requests: int | None = None,
        spool_max_clicks: int | None = None,
        drop_policy: str | None = None,
        insecure: bool | None = None,
        shutdown_timeout_millis: float = DEFAULT_SHUTDOWN_TIMEOUT_MILLIS,
    ) -> None:
        arguments = dict(locals())
        del arguments["self"], arguments["shutdown_timeout_millis"]
        self._start(arguments, shutdown_timeout_millis)

    def export(self, batch: Sequence[Any]) -> LogExportResult:
        """Queue the clicks among ``batch`` (log records as the SDK hands them)
        for delivery; never raises, never blocks. SUCCESS when there was none."""
        try:
            return LogExportResult.SUCCESS if self.offer(batch) else LogExportResult.FAILURE
        except Exception as exc:  # the SDK must never see our exceptions
            self._warn.error("export-error", "AgentSight log export failed: %r", exc)
            return LogExportResult.FAILURE

    def offer(self, records: Sequence[Any]) -> bool:
        """Queue the click log records among ``records``; cheap and non-blocking
        (``ClickLogRecordProcessor.on_emit`` calls it on the application's
        thread). True when there was none; False when refused (shut down,
        disabled, or the queue full under the ``newest`` drop policy)."""
        if self._delivery is None or self._closed:
            return False
        found = compact_logs(records)
        if found is None:
            return True
        item, _, nbytes = found
        return self._offer_once(item, item.clicks, LogClicks, nbytes)

    @classmethod
    def sharing_delivery_of(cls, exporter: DeliveringExporter) -> AgentSightLogExporter:
        """A log exporter with ``exporter``'s settings, and so its delivery.

        For wiring a log path beside a span exporter built elsewhere
        (``configure(exporter=..., signal="both")``); building one with the
        same arguments shares the delivery just as well.

        Args:
            exporter: An ``AgentSightSpanExporter`` (or log exporter). When it
                is disabled, the new one is too, for the same reason.

        Returns:
            The new exporter; it holds its own lease on the delivery.
        """
        shared = cls.__new__(cls)
        shared._start({}, exporter._shutdown_timeout * 1000.0, like=exporter)
        return shared
