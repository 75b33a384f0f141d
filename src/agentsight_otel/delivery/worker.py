"""The one background worker that drains the queue, and its flush and shutdown.

Shaped like the SDK's ``BatchProcessor``: callers only queue (``ClickQueue``)
and wake it; one daemon thread takes batches and hands them to the delivery
mode, memory (:mod:`.memory`) or spool (:mod:`.spooled`). A flush waits
until the worker has finished a pass that started after the flush was
asked for; a shutdown gives the worker until its deadline, then stops every
request still being retried. ``deliver`` and ``flush`` never raise into the
application.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Callable

from agentsight_otel._sdk import suppress_instrumentation
from agentsight_otel.config import ExporterSettings
from agentsight_otel.delivery.http import Transport
from agentsight_otel.delivery.memory import MemoryMode
from agentsight_otel.delivery.queue import ClickQueue, QueueItem
from agentsight_otel.delivery.report import Accounting, LossReason
from agentsight_otel.delivery.sender import Sender
from agentsight_otel.delivery.spool import Spool
from agentsight_otel.delivery.spooled import SpoolMode
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.wire.records import ClickRecord

logger = logging.getLogger("agentsight_otel")

#: A source's function from a batch of its queue items to click records, and
#: why any click events in them were rejected.
Translate = Callable[[Sequence[QueueItem]], tuple[list[ClickRecord], list[str]]]

#: How long shutdown() waits, after its deadline, for requests in flight to end.
SETTLE_SECONDS = 0.5
#: How long the worker waits for a batch to fill before sending it: sending
#: whatever is pending the moment it wakes makes requests of a few clicks
#: under a steady load; a tenth of a second of patience makes them much
#: fuller, for a tenth of a second of delay (BENCHMARKS.md). A flush or a
#: shutdown does not wait.
BATCH_LINGER_SECONDS = 0.1


class DeliveryWorker:
    """Owns the delivery thread(s), the HTTP client and the flush/shutdown state."""

    def __init__(
        self,
        settings: ExporterSettings,
        queue: ClickQueue,
        accounting: Accounting,
        translate: Translate,
        warn: RateLimitedLogger,
        spool: Spool | None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.cond = queue.cond
        self.accounting = accounting
        self._translate = translate
        self.warn = warn
        self.stop = threading.Event()
        self.closing = False
        self.close_deadline = float("inf")
        #: Clicks the worker took off the queue to send without the spool,
        #: not yet delivered or put back (still counted as queued).
        self.direct = 0
        self.flush_asked = 0
        self.flush_done = 0
        self.flush_ok = True
        #: Set by shutdown(): what it counted and logged as lost from then on
        #: is counted as dropped after retries again.
        self.shutdown_reported = False
        self.shutdown_detail = ""
        self._thread: threading.Thread | None = None
        self.sender = Sender(
            settings,
            Transport(settings, self.stop, lambda: self.close_deadline),
            accounting,
            warn,
            keeps_refused_auth=spool is not None,
        )
        self.mode: MemoryMode | SpoolMode = (
            MemoryMode(self) if spool is None else SpoolMode(self, spool)
        )

    # -- called by the exporter (lock held where said) -------------------------

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the thread(s) (lock held)."""
        self._thread = threading.Thread(target=self._run, name="agentsight-exporter", daemon=True)
        self._thread.start()
        self.mode.start()

    def queued(self) -> int:
        """Clicks accepted and not yet delivered nor on disk (lock held)."""
        return self.queue.clicks + self.mode.in_hand() + self.direct

    def accept_durably(self, mode: SpoolMode, records: Sequence[ClickRecord]) -> bool:
        """Spool mode: write records to the spool now (the OTLP bridge's path).

        True when they are all on disk; False when refused (shutting down,
        the spool full or failing): the sender should retry later.
        """
        with self.cond:
            if self.closing:
                return False
            self.accounting.submitted += len(records)
        try:
            dropped = mode.put(records)
        except Exception as exc:
            # Not on disk: the sender keeps them and retries (the bridge
            # answers 503), so they are not ours to count.
            mode.write_failed(exc, len(records))
            self.accounting.count_submitted(-len(records))
            return False
        with self.cond:
            if self._thread is None:
                self.start()
            self.cond.notify_all()  # as ClickQueue.put does: the worker must hear of it
        return dropped == 0

    def gauges(self) -> dict[str, int]:
        """What is waiting now: ``queued`` (in memory or in hand), its estimated
        ``queued_bytes`` and, with a spool, ``spooled`` (-1: unreadable)."""
        with self.cond:
            gauges = {"queued": self.queued(), "queued_bytes": self.queue.bytes}
        if isinstance(self.mode, SpoolMode):
            gauges["spooled"] = self.mode.size()
        return gauges

    def flush(self, deadline: float) -> bool:
        """Wait until a pass that started after this call has finished (lock held)."""
        if self._thread is None:
            self.start()
        self.flush_asked += 1
        ticket = self.flush_asked
        self.cond.notify_all()
        while self.flush_done < ticket:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.cond.wait(remaining)
        return self.flush_ok

    def shutdown(self, deadline: float) -> tuple[int, str]:
        """Deliver what it can until ``deadline``, then stop; returns the clicks
        dropped at shutdown (since start) and the last failure."""
        with self.cond:
            self.closing = True
            self.close_deadline = deadline
            thread = self._thread
            self.cond.notify_all()
        self.mode.join(deadline)
        if thread is not None:
            # Leave a sliver of the budget so an in-flight request's own
            # timeout (capped to the deadline) can end before we stop waiting.
            thread.join(max(0.0, deadline - time.monotonic()))
            self.stop.set()
            thread.join(0.2)
        self.stop.set()
        with self.cond:
            # Requests still in flight end promptly now (the stop event, and
            # every attempt's timeout is capped to the deadline): wait a
            # moment, so that what they could not deliver is counted and
            # reported by this shutdown, not after it returned.
            settle = time.monotonic() + SETTLE_SECONDS
            while self.mode.in_flight() and settle > time.monotonic():
                self.cond.wait(settle - time.monotonic())
            lost = self.accounting.lost
            lost[LossReason.AT_SHUTDOWN] += self.queue.clear()
            self.shutdown_reported = True
            result = lost[LossReason.AT_SHUTDOWN], self.shutdown_detail
        self.mode.close(thread is None or not thread.is_alive())
        self.sender.close()
        return result

    # -- helpers for the modes ----------------------------------------------------

    def deadline(self, closing: bool) -> float:
        deadline = time.monotonic() + self.settings.retry_deadline
        return min(deadline, self.close_deadline) if closing else deadline

    def translate(self, items: Sequence[QueueItem]) -> list[ClickRecord]:
        """The records in a batch of queue items; rejected clicks counted and logged."""
        records, rejected = self._translate(items)
        if rejected:
            self.accounting.count_lost(LossReason.INVALID, len(rejected))
            self.warn.warning(
                "invalid-click",
                "ignored %d malformed agentsight.button_click event(s): %s",
                len(rejected),
                rejected[0],
            )
        return records

    def release_direct(self, clicks: int) -> None:
        if clicks:
            with self.cond:
                self.direct -= clicks
                self.cond.notify_all()

    def linger(self, full: Callable[[], bool]) -> None:
        """Wait up to BATCH_LINGER_SECONDS for a batch to fill (lock held)."""
        end = time.monotonic() + BATCH_LINGER_SECONDS
        while not full() and not self.closing and self.flush_asked <= self.flush_done:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self.cond.wait(remaining)

    def count_lost_at_shutdown_or_after_retries(self, clicks: int, detail: str) -> bool:
        """Count clicks a memory delivery gave up on; True when shutdown's bound
        cut the retries (shutdown reports them in its one line)."""
        with self.cond:
            at_shutdown = self.closing and not self.shutdown_reported
            if at_shutdown:
                self.accounting.lost[LossReason.AT_SHUTDOWN] += clicks
                self.shutdown_detail = detail
            else:
                self.accounting.lost[LossReason.AFTER_RETRIES] += clicks
        return at_shutdown

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        # Our own requests must not show up as CLIENT spans in the traces of an
        # application that instruments requests/urllib3 (issue 14, bug 1).
        suppress_instrumentation()
        while True:
            items: list[QueueItem]
            try:
                items, ticket, closing = self.mode.take()
                flushing = ticket > self.flush_done
                ok = self.mode.process(items, closing, flushing)
            except Exception as exc:  # keep the worker alive whatever happens
                self.warn.error("worker-error", "AgentSight exporter worker error: %r", exc)
                items, ticket, ok = [], self.flush_done, False
                time.sleep(0.1)
            with self.cond:
                if ok is not None and ticket > self.flush_done:
                    self.flush_ok = ok
                    self.flush_done = ticket
                    self.cond.notify_all()
                finished = not self.queue.items or time.monotonic() >= self.close_deadline
                if self.closing and finished and not items:
                    self.flush_done = self.flush_asked
                    self.cond.notify_all()
                    return
