"""``AgentSightSpanExporter``: the OpenTelemetry ``SpanExporter`` facade over delivery/.

It turns finished spans into compact queue items (wire/spans.py) and hands
them to the bounded queue (delivery/queue.py); one background worker
(delivery/worker.py) translates and delivers them, from memory or through
the SQLite spool. Settings, the leased (shared) delivery, flush and shutdown
are exporter_base.py's, common with the log exporter. ``export()`` never raises; ``force_flush`` and
``shutdown`` are bounded by their timeouts even when AgentSight is
unreachable; after ``shutdown`` every export fails at once. The worker, the
HTTP session and the spool connection are rebuilt in a forked child
(delivery/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentsight_otel.exporter_base import DEFAULT_SHUTDOWN_TIMEOUT_MILLIS, DeliveringExporter
from agentsight_otel.wire.records import records_bytes
from agentsight_otel.wire.spans import compact

__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT_MILLIS", "AgentSightSpanExporter"]


class AgentSightSpanExporter(DeliveringExporter, SpanExporter):
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

    Exporters with the same settings in one process (this one and an
    ``AgentSightLogExporter``, say, both built by ``opentelemetry-instrument``
    from the environment) share one delivery: one queue, one spool, one set
    of retries and statistics (see ``agentsight_otel.delivery.shared``).

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
        self._start(arguments, shutdown_timeout_millis)

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
        if self._delivery is None or self._closed:
            return False
        if nbytes is None:
            if isinstance(item, list):
                nbytes = records_bytes(item)
            else:  # a span: keep its clicks, not the span
                found = compact(item)
                if found is None:
                    return True
                item, clicks, nbytes = found
        if isinstance(item, list):
            return self._offer(item, clicks, nbytes)
        held, context, resource = item  # a compact span: its clicks, once
        return self._offer_once(item, held, lambda kept: (kept, context, resource), nbytes)
