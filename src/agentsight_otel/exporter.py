"""``AgentSightSpanExporter``: the OpenTelemetry ``SpanExporter`` facade over delivery/.

It turns finished spans into compact queue items (wire/spans.py) and hands
them to the bounded queue (delivery/queue.py); one background worker
(delivery/worker.py) translates and delivers them, from memory or through
the SQLite spool. ``export()`` never raises; ``force_flush`` and
``shutdown`` are bounded by their timeouts even when AgentSight is
unreachable; after ``shutdown`` every export fails at once. The worker, the
HTTP session and the spool connection are rebuilt in a forked child
(delivery/pipeline.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentsight_otel.config import ConfigurationError, ExporterSettings, resolve_settings
from agentsight_otel.delivery.pipeline import Delivery
from agentsight_otel.delivery.report import Accounting
from agentsight_otel.delivery.spool import open_spool
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.wire.records import ClickRecord, records_bytes
from agentsight_otel.wire.spans import compact, records_from_items

logger = logging.getLogger("agentsight_otel")

#: How long ``shutdown()`` may take by default, delivery included. The SDK
#: calls it from ``atexit``; a hung exit is the complaint this bounds.
DEFAULT_SHUTDOWN_TIMEOUT_MILLIS = 5_000


class AgentSightSpanExporter(SpanExporter):
    """An OpenTelemetry ``SpanExporter`` that delivers clicks to AgentSight.

    It takes the ``agentsight.button_click`` events out of finished spans
    (other spans and events are ignored), queues them in memory (bounded)
    and, with ``spool_path``, in SQLite, and delivers them from a
    background thread with retries. Use it under a ``ClickSpanProcessor``
    (``configure()`` adds one), which bypasses the ``BatchSpanProcessor``
    queue that drops spans when full; ``export()`` also works under any
    processor, and ``OTEL_TRACES_EXPORTER=agentsight`` builds it with no
    arguments.

    Example::

        provider.add_span_processor(
            ClickSpanProcessor(AgentSightSpanExporter(spool_path="/var/lib/app/agentsight.db"))
        )

    Every argument left as ``None`` is read from the environment: the
    ``OTEL_EXPORTER_AGENTSIGHT_<NAME>`` variable, then (for the key, the
    endpoint and the environment) ``AGENTSIGHT_API_KEY``,
    ``AGENTSIGHT_API_ENDPOINT`` and ``AGENTSIGHT_ENVIRONMENT``, then the
    default (see ``agentsight_otel.environment_variables``).

    Args:
        api_key: The AgentSight API key, sent as ``Authorization: Api-Key
            <key>``; required, except for a loopback endpoint (without one,
            no ``Authorization`` is sent, which a local receiver started
            without ``--api-key`` accepts). Stripped; it must be printable
            ASCII with no inner spaces. Never logged nor shown in a repr.
        endpoint: Base URL. Default ``https://api.agentsight.io``. Plain
            ``http://`` is refused for a non-loopback host unless
            ``insecure``; user-info, a query, a fragment, whitespace or a
            backslash are refused.
        environment: AgentSight environment slug (``prod`` and ``dev`` are
            read as ``production`` and ``development``); a slug AgentSight
            does not list for the key is left out, with one warning.
            Default: none.
        api: ``"ingest"`` (default: batched ``POST /api/ingest/``) or
            ``"buttons"`` (one ``POST /api/buttons/`` per click).
        spool_path: SQLite file that keeps every click until AgentSight
            acknowledges it, across outages, restarts and ``kill -9``.
            Default: none (memory only; a batch still failing after
            ``retry_deadline`` is dropped and counted).
        timeout: Seconds per HTTP request (default 10, at least 0.001).
        retry_deadline: Seconds one batch is retried, with exponential
            backoff and jitter, before it is dropped (or left in the spool
            for later). Default 60.
        max_queue_size: Most clicks held in memory (default 262,144).
        max_queue_bytes: Most estimated bytes of clicks held in memory
            (default 64 MiB); the first bound reached applies.
        max_batch_size: Most clicks per ingest request (default 1,000).
        max_concurrent_requests: Ingest requests in flight at once without
            a spool (default 4).
        spool_max_clicks: Most clicks the spool keeps (default 1,000,000).
        drop_policy: When the queue or spool is full: ``"newest"`` refuses
            new clicks (default, the OpenTelemetry convention), ``"oldest"``
            evicts the oldest. Every drop is counted in ``statistics()``.
        insecure: Allow plain ``http://`` to a non-loopback host (the key
            travels unencrypted). Default False.
        shutdown_timeout_millis: How long ``shutdown()`` (called by the SDK
            at exit) may spend delivering what is queued. Default 5,000.
            It also caps a timeout passed to ``shutdown()`` (the SDK's
            ``BatchSpanProcessor`` passes the rest of its 30 s). Not read
            from the environment.

    Raises:
        TypeError: An unknown keyword argument. Nothing else: a setting
            that cannot work (no key, a bad number, an unusable spool
            path, ...) is logged once, ``disabled_reason`` says why, and
            every export is refused. Delivery failures are logged
            (rate-limited) and counted, never raised into the application.
    """

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
        self._warn = RateLimitedLogger(logger)
        self._shutdown_timeout = shutdown_timeout_millis / 1000.0
        self.disabled_reason: str | None = None
        self._settings: ExporterSettings | None = None
        self._delivery: Delivery | None = None
        try:
            self._settings = settings = resolve_settings(**arguments)
            spool = open_spool(settings) if settings.spool_path else None
        except ConfigurationError as exc:
            self._settings = None
            self.disabled_reason = str(exc)
            logger.error("AgentSight exporter disabled: %s", exc)
            return
        self._delivery = Delivery(settings, spool, records_from_items, self._warn)

    def __repr__(self) -> str:
        if self._settings is None:
            return f"AgentSightSpanExporter(disabled={self.disabled_reason!r})"
        s = self._settings
        return (
            f"AgentSightSpanExporter(endpoint={s.endpoint!r}, api={s.api!r}, "
            f"environment={s.environment!r}, spool_path={s.spool_path!r})"
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the clicks in ``spans`` for delivery; never raises, never blocks."""
        try:
            accepted = True
            for span in spans:
                found = compact(span)
                if found is not None and not self.offer(*found):
                    accepted = False
            return SpanExportResult.SUCCESS if accepted else SpanExportResult.FAILURE
        except Exception as exc:  # the SDK must never see our exceptions
            self._warn.error("export-error", "AgentSight export failed: %r", exc)
            return SpanExportResult.FAILURE

    def offer(self, item: Any, clicks: int, nbytes: int | None = None) -> bool:
        """Queue the clicks of a finished span (or a list of ClickRecords).

        ``item``: what ``wire.spans.compact(span)`` returned for the span, with
        its ``clicks`` and estimated ``nbytes`` (``ClickSpanProcessor.on_end``
        and ``export()`` pass it so); a list of ClickRecords; or a finished
        span, compacted here. Cheap and non-blocking: this is what ``on_end``
        calls on the application's thread. False when refused (shut down,
        disabled, or queue full under the ``newest`` drop policy).
        """
        if self._delivery is None:
            return False
        if nbytes is None:
            if isinstance(item, list):
                nbytes = records_bytes(item)
            else:  # a span: keep its clicks, not the span
                found = compact(item)
                if found is None:
                    return True
                item, clicks, nbytes = found
        return self._delivery.offer(item, clicks, nbytes)

    def accept(self, records: list[ClickRecord]) -> bool:
        """Take records for delivery, durably when there is a spool (the OTLP bridge).

        With a spool the records are on disk when this returns True, so a
        sender may consider them delivered; without one they are queued in
        memory, as ``offer`` does. False means refused (full, disabled, shut
        down): the sender should retry later. Does I/O: not for the
        application's request path.
        """
        return self._delivery is not None and self._delivery.accept(records)

    def backlog(self) -> int:
        """Clicks accepted but not yet delivered (queued in memory plus spooled)."""
        stats = self.statistics()
        return stats["queued"] + max(0, stats.get("spooled", 0))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver everything queued so far; True if it all arrived in time."""
        if self._delivery is None or self._delivery.closed:
            return self._delivery is not None
        return self._delivery.flush(timeout_millis / 1000.0)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Flush what is queued within the timeout, then stop. Idempotent.

        ``timeout_millis`` can only shorten the exporter's own bound
        (``shutdown_timeout_millis``): the SDK's ``BatchSpanProcessor`` passes
        what is left of its 30 s, which would hold the exit that long while
        AgentSight is unreachable.
        """
        if self._delivery is None or self._delivery.closed:
            return
        timeout = self._shutdown_timeout
        if timeout_millis is not None:
            timeout = min(timeout, max(0.0, timeout_millis / 1000.0))
        lost, detail = self._delivery.shutdown(timeout)
        if lost:
            # One line for every click this shutdown could neither deliver nor spool.
            logger.error(
                "AgentSight exporter shut down with %d undelivered click(s) dropped%s%s",
                lost,
                f" (last failure: {detail})" if detail else "",
                "; the spool keeps what reached it" if self._delivery.spool else "",
            )

    def statistics(self) -> dict[str, int]:
        """Counters since start: submitted, delivered, rejected, dropped_*, ...;
        and what waits now: queued, queued_bytes, spooled."""
        if self._delivery is None:
            return {**Accounting(threading.Condition()).counters(), "queued": 0, "queued_bytes": 0}
        return self._delivery.statistics()
