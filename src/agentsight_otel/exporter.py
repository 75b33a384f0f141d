"""``AgentSightSpanExporter``: finds clicks in finished spans and delivers them.

Design, in one paragraph: ``export()`` (from any span processor) and
``ClickSpanProcessor.on_end`` only *offer* spans that carry click events to
the exporter's own bounded queue, and return at once. One background worker
translates them (translate.py), and either delivers them (memory only:
retried until ``retry_deadline``, then dropped and counted) or first writes
them to the SQLite spool and delivers from there (nothing is dropped until
the spool is full; the spool outlives outages and crashes). ``export()``
never raises; ``force_flush`` and ``shutdown`` are bounded by their timeouts
even when AgentSight is unreachable; after ``shutdown`` every export fails
at once. The worker, the HTTP session and the spool connection are rebuilt
in a forked child, which starts with an empty queue: the parent's queued
clicks stay the parent's, so they are sent once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentsight_otel._sdk import suppress_instrumentation
from agentsight_otel.config import (
    BUTTONS_PATH,
    INGEST_PATH,
    ConfigurationError,
    ExporterSettings,
    resolve_settings,
)
from agentsight_otel.daemon_pool import DaemonPool
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.spool import Spool
from agentsight_otel.spool_faults import SpoolWriteGuard, report_quarantined
from agentsight_otel.transport import Outcome, Result, Transport
from agentsight_otel.wire.buttons import encode_buttons
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.records import ClickRecord, records_bytes
from agentsight_otel.wire.spans import compact, records_from_compact

logger = logging.getLogger("agentsight_otel")

#: How long ``shutdown()`` may take by default, delivery included. The SDK
#: calls it from ``atexit``; a hung exit is the complaint this bounds.
DEFAULT_SHUTDOWN_TIMEOUT_MILLIS = 5_000
#: Spool retry pause after a failed delivery: doubling from 1 s to 15 s.
_SPOOL_BACKOFF_MIN = 1.0
_SPOOL_BACKOFF_MAX = 15.0
#: Longest the delivery thread sleeps without looking at the spool. Another
#: process sharing the file (a forked server) may have left clicks in it.
_SPOOL_POLL_SECONDS = 5.0
#: How long shutdown() waits, after its deadline, for requests in flight to end.
_SETTLE_SECONDS = 0.5
#: How long the worker waits for a batch to fill before sending it.
BATCH_LINGER_SECONDS = 0.1
#: Concurrent requests for the one-click-per-request ``buttons`` API.
BUTTONS_CONCURRENCY = 8
#: Auth failures keep spooled clicks (a fixed key delivers them) but pause.
_AUTH_STATUSES = frozenset({401, 403})

#: (a CompactSpan or a list of ClickRecords, its click count, its estimated bytes)
_Item = Tuple[Any, int, int]


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
        api_key: Optional[str] = None,
        endpoint: Optional[str] = None,
        environment: Optional[str] = None,
        api: Optional[str] = None,
        spool_path: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
        retry_deadline: Optional[float] = None,
        max_queue_size: Optional[int] = None,
        max_queue_bytes: Optional[int] = None,
        max_batch_size: Optional[int] = None,
        max_concurrent_requests: Optional[int] = None,
        spool_max_clicks: Optional[int] = None,
        drop_policy: Optional[str] = None,
        insecure: Optional[bool] = None,
        shutdown_timeout_millis: float = DEFAULT_SHUTDOWN_TIMEOUT_MILLIS,
    ) -> None:
        self._warn = RateLimitedLogger(logger)
        self._shutdown_timeout = shutdown_timeout_millis / 1000.0
        self.disabled_reason: Optional[str] = None
        self._settings: Optional[ExporterSettings]
        try:
            self._settings = resolve_settings(
                api_key=api_key,
                endpoint=endpoint,
                environment=environment,
                api=api,
                spool_path=spool_path,
                spool_max_clicks=spool_max_clicks,
                drop_policy=drop_policy,
                timeout=timeout,
                retry_deadline=retry_deadline,
                max_queue_size=max_queue_size,
                max_queue_bytes=max_queue_bytes,
                max_batch_size=max_batch_size,
                max_concurrent_requests=max_concurrent_requests,
                insecure=insecure,
            )
        except ConfigurationError as exc:
            self._settings = None
            self.disabled_reason = str(exc)
            logger.error("AgentSight exporter disabled: %s", exc)
        self._spool: Optional[Spool] = None
        if self._settings is not None and self._settings.spool_path:
            try:
                self._spool = Spool(
                    self._settings.spool_path,
                    self._settings.spool_max_clicks,
                    self._settings.drop_policy,
                )
            except Exception as exc:  # an unusable spool path is a configuration error
                self.disabled_reason = f"cannot open spool {self._settings.spool_path!r}: {exc}"
                logger.error("AgentSight exporter disabled: %s", self.disabled_reason)
                self._settings = None
        self._counters: Dict[str, int] = dict.fromkeys(
            (
                "submitted",
                "delivered",
                "rejected",
                "dropped_queue_full",
                "dropped_after_retries",
                "dropped_at_shutdown",
                "spool_dropped",
                "quarantined",
                "spool_write_failures",
                "invalid",
            ),
            0,
        )
        self._closed = False
        self._init_runtime()
        _after_fork_registry.add(self)
        if self._spool is not None and self._spool_size() != 0:
            # Clicks left by an earlier process (a crash, a restart): deliver
            # them now, not only once this process has clicks of its own.
            with self._cond:
                self._start_worker()

    # -- runtime state (rebuilt after fork) ----------------------------------

    def _init_runtime(self) -> None:
        self._cond = threading.Condition()
        self._pending: Deque[_Item] = deque()
        self._pending_clicks = 0
        self._pending_bytes = 0
        #: Clicks the spooler has taken off the queue but not yet committed.
        self._spooling = 0
        #: Clicks the worker took off the queue to send without the spool
        #: (it could not take them), not yet delivered or put back.
        self._direct = 0
        #: While the spool refuses writes (disk full, I/O error), clicks stay
        #: in the queue and the worker sends them directly (spool_faults.py).
        self._spool_guard = SpoolWriteGuard(
            self._spool.path if self._spool is not None else "", self._warn
        )
        self._worker: Optional[threading.Thread] = None
        #: With a spool, a second thread moves queued clicks to disk, so a
        #: delivery being retried never holds new clicks in memory.
        self._spooler: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._closing = False
        self._close_deadline = float("inf")
        #: Flush bookkeeping: a flush waits until the worker has finished a
        #: pass that started after the flush was asked for.
        self._flush_asked = 0
        self._flush_done = 0
        self._flush_ok = True
        self._spool_backoff = 0.0
        self._spool_not_before = 0.0
        self._pool: Optional[DaemonPool] = None  # buttons API only, made lazily
        #: Memory-mode ingest: batches sent by a pool while the worker takes
        #: the next one; ``_slots`` bounds how many are in flight.
        self._senders: Optional[DaemonPool] = None
        self._slots = threading.BoundedSemaphore(
            self._settings.max_concurrent_requests if self._settings is not None else 1
        )
        self._in_flight = 0
        self._batches_ok = True  # no batch failed since the last flush report
        #: Batches cut short by shutdown() are counted as dropped at shutdown
        #: and reported in its one log line, with the last failure.
        self._shutdown_reported = False
        self._shutdown_detail = ""
        self._transport = (
            Transport(self._settings, self._stop, lambda: self._close_deadline)
            if self._settings is not None
            else None
        )

    def _after_fork_in_child(self) -> None:
        # Everything is rebuilt, including a new HTTP session: a pooled socket
        # shared with the parent would interleave two processes' requests.
        # The parent's session is dropped, not closed (its sockets are the
        # parent's too).
        self._init_runtime()

    def __repr__(self) -> str:
        if self._settings is None:
            return f"AgentSightSpanExporter(disabled={self.disabled_reason!r})"
        s = self._settings
        return (
            f"AgentSightSpanExporter(endpoint={s.endpoint!r}, api={s.api!r}, "
            f"environment={s.environment!r}, spool_path={s.spool_path!r})"
        )

    # -- SpanExporter -----------------------------------------------------------

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

    def offer(self, item: Any, clicks: int, nbytes: Optional[int] = None) -> bool:
        """Queue the clicks of a finished span (or a list of ClickRecords).

        ``item``: what ``compact.compact(span)`` returned for the span, with
        its ``clicks`` and estimated ``nbytes`` (``ClickSpanProcessor.on_end``
        and ``export()`` pass it so); a list of ClickRecords; or a finished
        span, compacted here. Cheap and non-blocking: this is what ``on_end``
        calls on the application's thread. False when refused (shut down,
        disabled, or queue full under the ``newest`` drop policy).
        """
        settings = self._settings
        if settings is None or self._closed:
            return False
        if nbytes is None:
            if isinstance(item, list):
                nbytes = records_bytes(item)
            else:  # a span: keep its clicks, not the span
                found = compact(item)
                if found is None:
                    return True
                item, clicks, nbytes = found
        with self._cond:
            if self._closing:
                return False
            self._counters["submitted"] += clicks
            if (
                self._pending_clicks + clicks > settings.max_queue_size
                or self._pending_bytes + nbytes > settings.max_queue_bytes
            ):
                if (
                    settings.drop_policy == "oldest"
                    and clicks <= settings.max_queue_size
                    and nbytes <= settings.max_queue_bytes
                ):
                    while (
                        self._pending_clicks + clicks > settings.max_queue_size
                        or self._pending_bytes + nbytes > settings.max_queue_bytes
                    ):
                        _, evicted, freed = self._pending.popleft()
                        self._pending_clicks -= evicted
                        self._pending_bytes -= freed
                        self._counters["dropped_queue_full"] += evicted
                else:
                    self._counters["dropped_queue_full"] += clicks
                    self._warn.warning(
                        "queue-full",
                        "AgentSight exporter queue is full (%d clicks, about %d bytes; bounds "
                        "max_queue_size=%d, max_queue_bytes=%d); dropped %d new click(s). "
                        "Delivery is not keeping up: check the endpoint, or use a spool.",
                        self._pending_clicks,
                        self._pending_bytes,
                        settings.max_queue_size,
                        settings.max_queue_bytes,
                        clicks,
                    )
                    return False
            was_empty = not self._pending
            before = self._pending_clicks
            self._pending.append((item, clicks, nbytes))
            self._pending_clicks = before + clicks
            self._pending_bytes += nbytes
            if self._worker is None:
                self._start_worker()
            # Only an offer that can make a sleeper's condition true wakes
            # anyone: the first item in an empty queue (the worker and the
            # spooler wait for one) and the one that fills a batch (the
            # worker lingers for that). Waking the worker for every span
            # cost each ending span a notify and a GIL hand-off. All, when
            # it does: the worker, the spooler and flushers wait on this one
            # condition, and a lone notify() can wake a thread with nothing
            # to do while the one that has work sleeps on (RELIABILITY.md, 5).
            if was_empty or before < settings.max_batch_size <= before + clicks:
                self._cond.notify_all()
        return True

    def accept(self, records: List[ClickRecord]) -> bool:
        """Take records for delivery, durably when there is a spool (the OTLP bridge).

        With a spool the records are on disk when this returns True, so a
        sender may consider them delivered; without one they are queued in
        memory, as ``offer`` does. False means refused (full, disabled, shut
        down): the sender should retry later. Does I/O: not for the
        application's request path.
        """
        if self._settings is None or self._closed or not records:
            return self._settings is not None and not self._closed
        if self._spool is None:
            records = list(records)
            return self.offer(records, len(records), records_bytes(records))
        with self._cond:
            if self._closing:
                return False
            self._counters["submitted"] += len(records)
        try:
            dropped = self._spool_records(records)
        except Exception as exc:
            # Not on disk: the sender keeps them and retries (the bridge
            # answers 503), so they are not ours to count.
            self._spool_write_failed(exc, len(records))
            self._count("submitted", -len(records))
            return False
        with self._cond:
            if self._worker is None:
                self._start_worker()
            self._cond.notify_all()  # see offer(): the worker must hear of it
        return dropped == 0

    def backlog(self) -> int:
        """Clicks accepted but not yet delivered (queued in memory plus spooled)."""
        with self._cond:
            queued = self._pending_clicks + self._spooling + self._direct
        if self._spool is not None:
            try:
                return queued + self._spool.size()
            except Exception:
                return queued
        return queued

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver everything queued so far; True if it all arrived in time."""
        if self._settings is None or self._closed:
            return self._settings is not None
        deadline = time.monotonic() + timeout_millis / 1000.0
        with self._cond:
            if self._worker is None:
                if not self._pending and (self._spool is None or self._spool_size() == 0):
                    return True
                self._start_worker()
            self._flush_asked += 1
            ticket = self._flush_asked
            self._cond.notify_all()
            while self._flush_done < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._flush_ok

    def shutdown(self, timeout_millis: Optional[float] = None) -> None:
        """Flush what is queued within the timeout, then stop. Idempotent.

        ``timeout_millis`` can only shorten the exporter's own bound
        (``shutdown_timeout_millis``): the SDK's ``BatchSpanProcessor`` passes
        what is left of its 30 s, which would hold the exit that long while
        AgentSight is unreachable.
        """
        if self._closed:
            return
        timeout = self._shutdown_timeout
        if timeout_millis is not None:
            timeout = min(timeout, max(0.0, timeout_millis / 1000.0))
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._close_deadline = deadline
            worker = self._worker
            self._cond.notify_all()
        self._closed = True
        spooler = self._spooler
        if spooler is not None:
            spooler.join(max(0.0, deadline - time.monotonic()))
        if worker is not None:
            # Leave a sliver of the budget so an in-flight request's own
            # timeout (capped to the deadline) can end before we stop waiting.
            worker.join(max(0.0, deadline - time.monotonic()))
            self._stop.set()
            worker.join(0.2)
        self._stop.set()
        with self._cond:
            # Requests still in flight end promptly now (the stop event, and
            # every attempt's timeout is capped to the deadline): wait a
            # moment, so that what they could not deliver is counted and
            # reported below, not after shutdown() returned.
            settle = time.monotonic() + _SETTLE_SECONDS
            while self._in_flight and settle > time.monotonic():
                self._cond.wait(settle - time.monotonic())
            self._counters["dropped_at_shutdown"] += self._pending_clicks
            self._pending.clear()
            self._pending_clicks = 0
            self._pending_bytes = 0
            lost = self._counters["dropped_at_shutdown"]
            detail = self._shutdown_detail
            self._shutdown_reported = True
        if lost:
            # One line for every click this shutdown could neither deliver nor spool.
            logger.error(
                "AgentSight exporter shut down with %d undelivered click(s) dropped%s%s",
                lost,
                f" (last failure: {detail})" if detail else "",
                "; the spool keeps what reached it" if self._spool is not None else "",
            )
        for pool in (self._pool, self._senders):
            if pool is not None:
                pool.shutdown()
        if self._transport is not None:
            self._transport.close()
        if self._spool is not None:
            with contextlib.suppress(Exception):  # best effort: leases expire anyway
                self._spool.release_mine()
            if worker is None or not worker.is_alive():
                self._spool.close()

    def _spool_size(self) -> int:
        """Clicks in the spool, or -1 when it cannot be read (not opened yet, an I/O error)."""
        assert self._spool is not None
        try:
            return self._spool.size()
        except Exception:
            return -1

    # -- introspection ------------------------------------------------------------

    def statistics(self) -> Dict[str, int]:
        """Counters since start: submitted, delivered, rejected, dropped_*, ..."""
        with self._cond:
            stats = dict(self._counters)
            stats["queued"] = self._pending_clicks + self._spooling + self._direct
            stats["queued_bytes"] = self._pending_bytes  # estimated, as the bound counts
        if self._spool is not None:
            try:
                stats["spooled"] = self._spool.size()
            except Exception:
                stats["spooled"] = -1
        return stats

    # -- the worker -----------------------------------------------------------------

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="agentsight-exporter", daemon=True)
        self._worker.start()
        if self._spool is not None:
            self._spooler = threading.Thread(
                target=self._run_spooler, name="agentsight-spooler", daemon=True
            )
            self._spooler.start()

    def _run_spooler(self) -> None:
        """Move queued clicks to the spool as soon as they arrive (spool mode)."""
        suppress_instrumentation()
        settings, spool = self._settings, self._spool
        assert settings is not None and spool is not None
        while True:
            with self._cond:
                while True:
                    failing = self._spool_guard.failing_until - time.monotonic()
                    if self._pending and failing <= 0:
                        break
                    if self._closing and (not self._pending or failing > 0):
                        # What the spool cannot take now is the worker's to send.
                        self._cond.notify_all()
                        return
                    self._cond.wait(max(failing, 0.01) if self._pending else None)
                items, taken = self._pop_batch()
                self._spooling += taken
            try:
                records = self._translate(items)
                try:
                    self._spool_records(records)
                except Exception as exc:
                    # Not on disk: the clicks go back to the front of the
                    # queue, for the worker to send directly or for this
                    # thread to spool once the spool takes writes again.
                    self._spool_write_failed(exc, len(records))
                    self._requeue(records)
            except Exception as exc:  # keep the spooler alive whatever happens
                self._warn.error("spooler-error", "AgentSight spooler error: %r", exc)
            finally:
                with self._cond:
                    self._spooling -= taken
                    self._cond.notify_all()

    def _pop_batch(self) -> Tuple[List[_Item], int]:
        """Up to ``max_batch_size`` clicks off the queue (lock held), and how many."""
        assert self._settings is not None
        limit = self._settings.max_batch_size
        items: List[_Item] = []
        taken = 0
        freed = 0
        while self._pending and taken < limit:
            item = self._pending.popleft()
            items.append(item)
            taken += item[1]
            freed += item[2]
        self._pending_clicks -= taken
        self._pending_bytes -= freed
        return items, taken

    def _spool_records(self, records: List[ClickRecord]) -> int:
        """Write records to the spool; returns how many the drop policy refused."""
        assert self._spool is not None
        dropped = self._spool.put(records)
        self._spool_guard.succeeded()
        if dropped:
            self._count("spool_dropped", dropped)
            self._warn.warning(
                "spool-full",
                "AgentSight spool is full (%d clicks, drop policy %r); dropped %d click(s)",
                self._spool.max_clicks,
                self._spool.drop_policy,
                dropped,
            )
        return dropped

    def _spool_write_failed(
        self, exc: BaseException, clicks: int, doing: str = "take %d click(s)"
    ) -> None:
        """The spool refused a write: count it, log it, and wake the worker,
        which sends what is queued directly while the spool is left alone."""
        self._count("spool_write_failures", 1)
        self._spool_guard.failed(exc, clicks, doing)
        with self._cond:
            self._cond.notify_all()

    def _requeue(self, records: List[ClickRecord]) -> None:
        """Put clicks not yet on disk nor delivered back at the front of the queue.

        They were counted in the queue's bound when offered, so they may
        take it past the bound by at most one batch while new clicks wait.
        """
        if not records:
            return
        nbytes = records_bytes(records)
        with self._cond:
            self._pending.appendleft((records, len(records), nbytes))
            self._pending_clicks += len(records)
            self._pending_bytes += nbytes
            self._cond.notify_all()

    def _take(self) -> Tuple[List[_Item], int, bool]:
        """Wait for work; returns (items, flush ticket to honour, closing)."""
        settings = self._settings
        assert settings is not None
        if self._spool is not None:
            return self._take_spooled()
        with self._cond:
            while True:
                if self._pending or self._closing or self._flush_asked > self._flush_done:
                    break
                wait: Optional[float] = None
                if self._spool is not None:
                    due = self._spool_wait()
                    if due is not None and due <= 0:
                        break
                    wait = due
                self._cond.wait(wait if wait is None else min(wait, 5.0))
            self._linger(lambda: self._pending_clicks >= settings.max_batch_size)
            items, taken = self._pop_batch()
            self._direct += taken  # in hand until delivered or dropped: still counted
            ticket = self._flush_asked if not self._pending else self._flush_done
            return items, ticket, self._closing

    def _take_spooled(self) -> Tuple[List[_Item], int, bool]:
        """Spool mode: wait until spooled clicks are due, or a flush or shutdown.

        A flush (or shutdown) first waits for the spooler to commit what was
        queued before it, so that the pass it triggers covers those clicks.
        """
        with self._cond:
            while True:
                if self._pending and time.monotonic() < self._spool_guard.failing_until:
                    # The spool cannot take them: send them from memory now.
                    items, taken = self._pop_batch()
                    self._direct += taken
                    return items, self._flush_asked, self._closing
                spooling = bool(self._pending) or self._spooling > 0
                urgent = self._closing or self._flush_asked > self._flush_done
                if urgent and (not spooling or time.monotonic() >= self._close_deadline):
                    break
                wait: Optional[float] = 0.05  # the spooler is committing: look again soon
                if not urgent:
                    due = self._spool_wait()
                    if due is not None and due <= 0:
                        break
                    # Also look when empty: other processes may share the spool.
                    wait = _SPOOL_POLL_SECONDS if due is None else min(due, _SPOOL_POLL_SECONDS)
                self._cond.wait(wait)
            self._linger(lambda: False)
            return [], self._flush_asked, self._closing

    def _linger(self, full: Callable[[], bool]) -> None:
        """Wait up to BATCH_LINGER_SECONDS for a batch to fill (lock held).

        Sending whatever is pending the moment the worker wakes made requests
        of ~4.5 clicks at a steady 667 clicks/s (the soak measured it); a
        tenth of a second of patience makes them ~15x fuller, for a tenth
        of a second of delay. A flush or a shutdown does not wait.
        """
        end = time.monotonic() + BATCH_LINGER_SECONDS
        while not full() and not self._closing and self._flush_asked <= self._flush_done:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _spool_wait(self) -> Optional[float]:
        assert self._spool is not None
        backoff = self._spool_not_before - time.monotonic()
        try:
            due = self._spool.next_due_in()
        except Exception:
            return 5.0
        if due is None:
            return None
        return max(due, backoff, 0.0)

    def _run(self) -> None:
        # Our own requests must not show up as CLIENT spans in the traces of an
        # application that instruments requests/urllib3 (issue 14, bug 1).
        suppress_instrumentation()
        settings = self._settings
        assert settings is not None
        concurrent = (
            self._spool is None
            and settings.api == "ingest"
            and settings.max_concurrent_requests > 1
        )
        while True:
            try:
                items, ticket, closing = self._take()
                flushing = ticket > self._flush_done
                ok: Optional[bool] = (
                    self._dispatch(items, closing, flushing)
                    if concurrent
                    else self._process(items, closing, flushing)
                )
            except Exception as exc:  # keep the worker alive whatever happens
                self._warn.error("worker-error", "AgentSight exporter worker error: %r", exc)
                items, ticket, ok = [], self._flush_done, False
                time.sleep(0.1)
            with self._cond:
                if ok is not None and ticket > self._flush_done:
                    self._flush_ok = ok
                    self._flush_done = ticket
                    self._cond.notify_all()
                finished = not self._pending or time.monotonic() >= self._close_deadline
                if self._closing and finished and not items:
                    self._flush_done = self._flush_asked
                    self._cond.notify_all()
                    return

    def _dispatch(self, items: List[_Item], closing: bool, flushing: bool) -> Optional[bool]:
        """Memory mode, ingest: encode the batch here, send it from the pool.

        The worker translates and encodes the next batch while earlier ones
        wait on the network, up to ``max_concurrent_requests`` in flight: one
        request at a time caps delivery at one batch per round trip. Order does not matter to
        ingest (the receiver orders by time; click ids make it idempotent).
        A pass that honours a flush or a shutdown waits for every batch in
        flight and reports whether all of them arrived; others report None.
        """
        taken = sum(item[1] for item in items)
        handed = False
        try:
            records = self._translate(items) if items else []
            if records:
                # Translating and encoding stay on this one thread; only the wait
                # for the answer is shared out. Several CPU-bound senders would
                # each take the GIL from the application's threads.
                assert self._transport is not None
                body = encode_ingest(records, self._transport.environment(self._deadline(closing)))
                self._slots.acquire()
                with self._cond:
                    self._in_flight += 1
                handed = True
                try:
                    self._sender_pool().submit(self._send_batch, records, body, closing, taken)
                except RuntimeError:
                    # At interpreter exit no new threads may start: send it here.
                    self._send_batch(records, body, closing, taken)
        finally:
            if not handed:
                self._release_direct(taken)
        if not (flushing or closing):
            return None
        with self._cond:
            while self._in_flight and time.monotonic() < self._close_deadline:
                self._cond.wait(
                    min(1.0, self._close_deadline - time.monotonic()) if closing else 1.0
                )
            ok, self._batches_ok = self._batches_ok and not self._in_flight, True
        return ok

    def _send_batch(
        self, records: List[ClickRecord], body: bytes, closing: bool, taken: int = 0
    ) -> None:
        ok: Optional[bool] = False
        try:
            ok = self._deliver_or_drop(records, closing, body)
        except Exception as exc:  # a sender thread must not die silently
            self._warn.error("worker-error", "AgentSight exporter sender error: %r", exc)
        finally:
            self._slots.release()
            with self._cond:
                self._in_flight -= 1
                self._direct -= taken
                if ok is False:
                    self._batches_ok = False
                self._cond.notify_all()

    def _sender_pool(self) -> DaemonPool:
        if self._senders is None:
            assert self._settings is not None
            self._senders = DaemonPool(self._settings.max_concurrent_requests, "agentsight-sender")
        return self._senders

    def _release_direct(self, clicks: int) -> None:
        if clicks:
            with self._cond:
                self._direct -= clicks
                self._cond.notify_all()

    def _count(self, counter: str, n: int) -> None:
        if n:
            with self._cond:  # sender threads count concurrently
                self._counters[counter] += n

    def _deadline(self, closing: bool) -> float:
        assert self._settings is not None
        deadline = time.monotonic() + self._settings.retry_deadline
        return min(deadline, self._close_deadline) if closing else deadline

    def _process(self, items: List[_Item], closing: bool, flushing: bool) -> Optional[bool]:
        if self._spool is None:
            try:
                return self._deliver_or_drop(self._translate(items), closing)
            finally:
                self._release_direct(sum(item[1] for item in items))
        ok = True
        if items:  # taken off the queue because the spool could not take them
            ok = self._send_unspooled(items, closing)
        while ok and (flushing or closing):
            # A flush promises that every click queued before it arrived or is
            # on disk: what the spool refused is sent from here, batch by batch.
            with self._cond:
                if not self._pending or time.monotonic() >= self._spool_guard.failing_until:
                    break
                items, _ = self._pop_batch()
                self._direct += sum(item[1] for item in items)
            ok = self._send_unspooled(items, closing)
        drained = self._drain_spool(closing, flushing)
        return ok and drained is not False

    def _send_unspooled(self, items: List[_Item], closing: bool) -> bool:
        """Spool mode, clicks the spool refused: spool them if it takes writes
        again, else deliver them directly; what fails goes back to the queue.

        True when every one of them is on disk or delivered.
        """
        taken = sum(item[1] for item in items)
        try:
            records = self._translate(items)
            if time.monotonic() >= self._spool_guard.failing_until:
                try:
                    self._spool_records(records)
                    return True
                except Exception as exc:
                    self._spool_write_failed(exc, len(records))
            outcome = self._deliver(records, self._deadline(closing)) if records else None
            if outcome is None:
                return True
            self._requeue([records[i] for i in outcome["failed"]])
            return not outcome["failed"] and not outcome["rejected"]
        finally:
            self._release_direct(taken)

    def _deliver_or_drop(
        self, records: List[ClickRecord], closing: bool, body: Optional[bytes] = None
    ) -> bool:
        """Memory mode: deliver within the deadline, else drop, count and say so."""
        if not records:
            return True
        outcome = self._deliver(records, self._deadline(closing), body)
        failed = outcome["failed"]
        if not failed:
            return not outcome["rejected"]
        with self._cond:
            # While shutting down, the shutdown bound is what cut the retries.
            at_shutdown = self._closing and not self._shutdown_reported
            if at_shutdown:
                self._counters["dropped_at_shutdown"] += len(failed)
                self._shutdown_detail = outcome["detail"]
            else:
                self._counters["dropped_after_retries"] += len(failed)
        if not at_shutdown:
            self._warn.warning(
                "gave-up",
                "AgentSight delivery failed; dropped %d click(s) after retrying "
                "(last failure: %s). Configure a spool to keep clicks through outages.",
                len(failed),
                outcome["detail"],
            )
        return False

    def _translate(self, items: List[_Item]) -> List[ClickRecord]:
        spans = [item for item, _, _ in items if not isinstance(item, list)]
        records: List[ClickRecord] = []
        for item, _, _ in items:
            if isinstance(item, list):
                records.extend(item)
        if spans:
            found, rejected = records_from_compact(spans)
            records.extend(found)
            if rejected:
                self._count("invalid", len(rejected))
                self._warn.warning(
                    "invalid-click",
                    "ignored %d malformed agentsight.button_click event(s): %s",
                    len(rejected),
                    rejected[0],
                )
        return records

    def _drain_spool(self, closing: bool, flushing: bool = False) -> Optional[bool]:
        """Deliver due spooled clicks, batch by batch, until none is due or one fails.

        True: all due clicks delivered; False: a delivery failed or was rejected.
        """
        spool = self._spool
        settings = self._settings
        assert spool is not None and settings is not None
        # A flush or a shutdown asks for everything now, backoff or not.
        urgent = closing or flushing
        if time.monotonic() < self._spool_not_before and not urgent:
            return False
        if not self._ack([]):
            return False
        all_ok = True
        while not self._stop.is_set():
            deadline = self._deadline(closing)
            hold = max(1.0, deadline - time.monotonic()) + settings.timeout + 5.0
            # Each batch is acked, rejected-and-acked, or released-and-returned,
            # so even an urgent pass cannot lease the same click twice.
            leased = spool.lease(settings.max_batch_size, hold, now_or_later=urgent)
            set_aside = spool.take_quarantined()
            if set_aside:
                self._count("quarantined", len(set_aside))
                report_quarantined(logger, set_aside)
            if not leased:
                return all_ok
            outcome = self._deliver([r for _, r in leased], deadline)
            done = [leased[i][0] for i in outcome["delivered"] + outcome["rejected"]]
            retry = [leased[i][0] for i in outcome["failed"]]
            if not self._ack(done):
                return False
            if retry:
                auth = outcome["status"] in _AUTH_STATUSES
                self._spool_backoff = min(
                    _SPOOL_BACKOFF_MAX, max(_SPOOL_BACKOFF_MIN, self._spool_backoff * 2)
                )
                pause = _SPOOL_BACKOFF_MAX if auth else self._spool_backoff
                pause *= random.uniform(0.5, 1.0)
                spool.release(retry, pause)
                self._spool_not_before = time.monotonic() + pause
                self._warn.warning(
                    "spool-retry",
                    "AgentSight delivery failing (%s); %d click(s) kept in the spool, "
                    "next try in %.1fs",
                    outcome["detail"],
                    len(retry),
                    pause,
                )
                return False
            self._spool_backoff = 0.0
            if outcome["rejected"]:
                all_ok = False
            if closing and time.monotonic() >= self._close_deadline:
                return all_ok
        return all_ok

    def _ack(self, seqs: List[int]) -> bool:
        """Forget delivered clicks in the spool (and any whose ack it refused
        before, which it keeps: acked on the next pass, not sent again)."""
        assert self._spool is not None
        try:
            self._spool.ack(seqs)
        except Exception as exc:
            self._spool_write_failed(exc, len(seqs), "forget %d delivered click(s)")
            return False
        return True

    # -- delivery ------------------------------------------------------------------

    def _deliver(
        self, records: List[ClickRecord], deadline: float, body: Optional[bytes] = None
    ) -> Dict[str, Any]:
        """Send records; returns indexes delivered / rejected / failed (retryable).

        ``body``: the ingest body of all ``records``, when already encoded.
        """
        settings = self._settings
        transport = self._transport
        assert settings is not None and transport is not None
        report: Dict[str, Any] = {
            "delivered": [],
            "rejected": [],
            "failed": [],
            "detail": "",
            "status": None,
        }
        if settings.api == "buttons":
            # One request per click: sent BUTTONS_CONCURRENCY at a time, or a
            # 50 ms round trip would cap delivery at 20 clicks a second.
            bodies = [encode_buttons(record) for record in records]

            def send(body: bytes) -> Result:
                return transport.post(BUTTONS_PATH, body, deadline, compressible=False)

            try:
                results = list(self._buttons_pool().map(send, bodies))
            except RuntimeError:
                # At interpreter exit (the SDK shuts down from atexit) no new
                # threads may start; the last clicks go one at a time instead.
                results = [send(body) for body in bodies]
            for index, result in enumerate(results):
                self._file(result, [index], report)
        else:
            self._deliver_ingest(
                records, list(range(len(records))), deadline, report, retry=True, body=body
            )
        self._count("delivered", len(report["delivered"]))
        self._count("rejected", len(report["rejected"]))
        return report

    def _buttons_pool(self) -> DaemonPool:
        if self._pool is None:
            self._pool = DaemonPool(BUTTONS_CONCURRENCY, "agentsight-buttons")
        return self._pool

    def _deliver_ingest(
        self,
        records: List[ClickRecord],
        indexes: List[int],
        deadline: float,
        report: Dict[str, Any],
        retry: bool,
        body: Optional[bytes] = None,
    ) -> None:
        settings = self._settings
        transport = self._transport
        assert settings is not None and transport is not None
        chosen = [records[i] for i in indexes]
        if body is None:
            body = encode_ingest(chosen, transport.environment(deadline))
        # Blocks appear in the order of each conversation's first click in time.
        in_time = sorted(chosen, key=lambda r: r.timestamp_ns)
        block_of = {
            cid: n for n, cid in enumerate(dict.fromkeys(r.conversation_id for r in in_time))
        }
        result = transport.post(INGEST_PATH, body, deadline, compressible=True)
        if result.outcome is Outcome.REJECTED and result.rejected_blocks and retry:
            # Ingest names the offending blocks; the others were fine and are
            # sent again without them, instead of being dropped with them.
            bad = set(result.rejected_blocks)
            rejected = [i for i, r in zip(indexes, chosen) if block_of[r.conversation_id] in bad]
            kept = [i for i, r in zip(indexes, chosen) if block_of[r.conversation_id] not in bad]
            self._file(result, rejected, report)
            if kept:
                self._deliver_ingest(records, kept, deadline, report, retry=False)
            return
        self._file(result, indexes, report)

    def _file(self, result: Result, indexes: List[int], report: Dict[str, Any]) -> None:
        report["status"] = result.status
        if result.outcome is Outcome.DELIVERED:
            report["delivered"].extend(indexes)
            return
        report["detail"] = result.detail or f"HTTP {result.status}"
        auth = result.status in _AUTH_STATUSES
        if auth:
            keyless = self._settings is not None and self._settings.api_key is None
            self._warn.error(
                "auth",
                "AgentSight %s (HTTP %s)%s; %s AGENTSIGHT_API_KEY",
                "asks for an API key and none is set" if keyless else "refused the API key",
                result.status,
                "; spooled clicks are kept until it is fixed" if self._spool else "",
                "set" if keyless else "check",
            )
        # With a spool, an auth failure keeps the clicks: a fixed key delivers them.
        if result.outcome is Outcome.REJECTED and not (auth and self._spool is not None):
            report["rejected"].extend(indexes)
            self._warn.warning(
                f"rejected-{result.status}",
                "AgentSight rejected %d click(s) with HTTP %s; not retrying: %s",
                len(indexes),
                result.status,
                result.detail,
            )
        else:
            report["failed"].extend(indexes)


class _AfterForkRegistry:
    """Rebuilds every live exporter's threads and sockets in a forked child."""

    def __init__(self) -> None:
        self._exporters: weakref.WeakSet[AgentSightSpanExporter] = weakref.WeakSet()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def add(self, exporter: AgentSightSpanExporter) -> None:
        self._exporters.add(exporter)

    def _after_fork(self) -> None:
        for exporter in list(self._exporters):
            exporter._after_fork_in_child()


_after_fork_registry = _AfterForkRegistry()
