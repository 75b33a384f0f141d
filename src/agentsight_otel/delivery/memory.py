"""Memory mode: batches are delivered from memory, retried until a deadline, then
dropped and counted (``LossReason.AFTER_RETRIES``, or ``AT_SHUTDOWN``).

With the ingest API and more than one request allowed in flight, the worker
translates and encodes the next batch while earlier ones wait on the
network in a small pool of daemon threads: one request at a time caps
delivery at one batch per round trip. Order does not matter to ingest (the
receiver orders by time; click ids make it idempotent).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from agentsight_otel.delivery.daemon_pool import DaemonPool
from agentsight_otel.delivery.queue import QueueItem, clicks_in
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.records import ClickRecord

if TYPE_CHECKING:
    from agentsight_otel.delivery.worker import DeliveryWorker


class MemoryMode:
    """How the worker takes and delivers batches without a spool."""

    def __init__(self, worker: DeliveryWorker) -> None:
        self._w = worker
        settings = worker.settings
        self._concurrent = settings.api == "ingest" and settings.max_concurrent_requests > 1
        #: Batches sent by the pool while the worker takes the next one;
        #: ``_slots`` bounds how many are in flight.
        self._senders: DaemonPool | None = None
        self._slots = threading.BoundedSemaphore(settings.max_concurrent_requests)
        self._in_flight = 0
        self._batches_ok = True  # no batch failed since the last flush report

    def start(self) -> None:
        return None

    def join(self, deadline: float) -> None:
        return None

    def in_hand(self) -> int:
        return 0

    def in_flight(self) -> int:
        return self._in_flight

    def close(self, worker_stopped: bool) -> None:
        if self._senders is not None:
            self._senders.shutdown()

    def take(self) -> tuple[list[QueueItem], int, bool]:
        """Wait for work; returns (items, flush ticket to honour, closing)."""
        w = self._w
        queue = w.queue
        with w.cond:
            while not (queue.items or w.closing or w.flush_asked > w.flush_done):
                w.cond.wait()
            w.linger(lambda: queue.clicks >= queue.batch_size)
            items, taken = queue.pop_batch()
            w.direct += taken  # in hand until delivered or dropped: still counted
            ticket = w.flush_asked if not queue.items else w.flush_done
            return items, ticket, w.closing

    def process(self, items: list[QueueItem], closing: bool, flushing: bool) -> bool | None:
        """Deliver a batch; True/False: whether all of it (and, for a flush or
        a shutdown, every batch in flight) arrived; None: not known yet."""
        if self._concurrent:
            return self._dispatch(items, closing, flushing)
        try:
            return self._deliver_or_drop(self._w.translate(items), closing)
        finally:
            self._w.release_direct(clicks_in(items))

    def _dispatch(self, items: list[QueueItem], closing: bool, flushing: bool) -> bool | None:
        """Encode the batch here, send it from the pool. A pass that honours a
        flush or a shutdown waits for every batch in flight."""
        w = self._w
        taken = clicks_in(items)
        handed = False
        try:
            records = w.translate(items) if items else []
            if records:
                # Translating and encoding stay on this one thread; only the wait
                # for the answer is shared out. Several CPU-bound senders would
                # each take the GIL from the application's threads.
                environment = w.sender.transport.environment(w.deadline(closing))
                body = encode_ingest(records, environment)
                self._slots.acquire()
                with w.cond:
                    self._in_flight += 1
                handed = True
                try:
                    self._sender_pool().submit(self._send_batch, records, body, closing, taken)
                except RuntimeError:
                    # At interpreter exit no new threads may start: send it here.
                    self._send_batch(records, body, closing, taken)
        finally:
            if not handed:
                w.release_direct(taken)
        if not (flushing or closing):
            return None
        with w.cond:
            while self._in_flight and time.monotonic() < w.close_deadline:
                w.cond.wait(min(1.0, w.close_deadline - time.monotonic()) if closing else 1.0)
            ok, self._batches_ok = self._batches_ok and not self._in_flight, True
        return ok

    def _send_batch(
        self, records: list[ClickRecord], body: bytes, closing: bool, taken: int = 0
    ) -> None:
        w = self._w
        ok: bool | None = False
        try:
            ok = self._deliver_or_drop(records, closing, body)
        except Exception as exc:  # a sender thread must not die silently
            w.warn.error("worker-error", "AgentSight exporter sender error: %r", exc)
        finally:
            self._slots.release()
            with w.cond:
                self._in_flight -= 1
                w.direct -= taken
                if ok is False:
                    self._batches_ok = False
                w.cond.notify_all()

    def _sender_pool(self) -> DaemonPool:
        if self._senders is None:
            size = self._w.settings.max_concurrent_requests
            self._senders = DaemonPool(size, "agentsight-sender")
        return self._senders

    def _deliver_or_drop(
        self, records: list[ClickRecord], closing: bool, body: bytes | None = None
    ) -> bool:
        """Deliver within the deadline, else drop, count and say so."""
        if not records:
            return True
        w = self._w
        report = w.sender.deliver(records, w.deadline(closing), body)
        if not report.failed:
            return not report.rejected
        if not w.count_lost_at_shutdown_or_after_retries(len(report.failed), report.detail):
            w.warn.warning(
                "gave-up",
                "AgentSight delivery failed; dropped %d click(s) after retrying "
                "(last failure: %s). Configure a spool to keep clicks through outages.",
                len(report.failed),
                report.detail,
            )
        return False
