"""Spool mode: every click goes to the SQLite spool first and is delivered from there.

A spooler thread moves queued clicks to disk as they arrive, so a delivery
being retried never holds new clicks in memory; the worker leases due
clicks from the spool, delivers them and forgets them once acknowledged
(or refused for good). Nothing is dropped until the spool is full. While
the spool refuses writes (disk full, I/O error), clicks stay in the memory
queue and the worker sends them directly (spool_faults.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentsight_otel._sdk import suppress_instrumentation
from agentsight_otel.delivery.queue import QueueItem, clicks_in
from agentsight_otel.delivery.report import LossReason
from agentsight_otel.delivery.sender import AUTH_STATUSES
from agentsight_otel.delivery.spool import Spool
from agentsight_otel.delivery.spool_faults import SpoolWriteGuard, report_quarantined
from agentsight_otel.wire.records import ClickRecord

if TYPE_CHECKING:
    from agentsight_otel.delivery.worker import DeliveryWorker

logger = logging.getLogger("agentsight_otel")

#: Spool retry pause after a failed delivery: doubling from 1 s to 15 s.
BACKOFF_MIN = 1.0
BACKOFF_MAX = 15.0
#: Longest the worker sleeps without looking at the spool. Another process
#: sharing the file (a forked server) may have left clicks in it.
POLL_SECONDS = 5.0


class SpoolMode:
    """How the worker (and the spooler thread) deliver through the spool."""

    def __init__(self, worker: DeliveryWorker, spool: Spool) -> None:
        self._w = worker
        self.spool = spool
        self.guard = SpoolWriteGuard(spool.path, worker.warn)
        #: Clicks the spooler has taken off the queue but not yet committed.
        self._spooling = 0
        self._spooler: threading.Thread | None = None
        self._backoff = 0.0
        self._not_before = 0.0

    def start(self) -> None:
        self._spooler = threading.Thread(target=self._run, name="agentsight-spooler", daemon=True)
        self._spooler.start()

    def join(self, deadline: float) -> None:
        if self._spooler is not None:
            self._spooler.join(max(0.0, deadline - time.monotonic()))

    def in_hand(self) -> int:
        return self._spooling

    def in_flight(self) -> int:
        return 0

    def close(self, worker_stopped: bool) -> None:
        with contextlib.suppress(Exception):  # best effort: leases expire anyway
            self.spool.release_mine()
        if worker_stopped:
            self.spool.close()

    def size(self) -> int:
        """Clicks in the spool, or -1 when it cannot be read (an I/O error)."""
        try:
            return self.spool.size()
        except Exception:
            return -1

    # -- writing -------------------------------------------------------------------

    def put(self, records: Sequence[ClickRecord]) -> int:
        """Write records to the spool; returns how many the drop policy refused."""
        dropped = self.spool.put(records)
        self.guard.succeeded()
        if dropped:
            self._w.accounting.count_lost(LossReason.SPOOL_FULL, dropped)
            self._w.warn.warning(
                "spool-full",
                "AgentSight spool is full (%d clicks, drop policy %r); dropped %d click(s)",
                self.spool.max_clicks,
                self.spool.drop_policy,
                dropped,
            )
        return dropped

    def write_failed(
        self, exc: BaseException, clicks: int, doing: str = "take %d click(s)"
    ) -> None:
        """The spool refused a write: count it, log it, and wake the worker,
        which sends what is queued directly while the spool is left alone."""
        self._w.accounting.count_spool_write_failure()
        self.guard.failed(exc, clicks, doing)
        with self._w.cond:
            self._w.cond.notify_all()

    def _run(self) -> None:
        """The spooler: move queued clicks to the spool as soon as they arrive."""
        suppress_instrumentation()
        w = self._w
        while True:
            with w.cond:
                while True:
                    failing = self.guard.failing_until - time.monotonic()
                    if w.queue.items and failing <= 0:
                        break
                    if w.closing and (not w.queue.items or failing > 0):
                        # What the spool cannot take now is the worker's to send.
                        w.cond.notify_all()
                        return
                    w.cond.wait(max(failing, 0.01) if w.queue.items else None)
                items, taken = w.queue.pop_batch()
                self._spooling += taken
            try:
                records = w.translate(items)
                try:
                    self.put(records)
                except Exception as exc:
                    # Not on disk: back to the front of the queue, for the
                    # worker to send directly or for this thread to spool once
                    # the spool takes writes again.
                    self.write_failed(exc, len(records))
                    w.queue.put_back(records)
            except Exception as exc:  # keep the spooler alive whatever happens
                w.warn.error("spooler-error", "AgentSight spooler error: %r", exc)
            finally:
                with w.cond:
                    self._spooling -= taken
                    w.cond.notify_all()

    # -- the worker's side -----------------------------------------------------------

    def take(self) -> tuple[list[QueueItem], int, bool]:
        """Wait until spooled clicks are due, or a flush or shutdown.

        A flush (or shutdown) first waits for the spooler to commit what was
        queued before it, so that the pass it triggers covers those clicks.
        """
        w = self._w
        with w.cond:
            while True:
                if w.queue.items and time.monotonic() < self.guard.failing_until:
                    # The spool cannot take them: send them from memory now.
                    items, taken = w.queue.pop_batch()
                    w.direct += taken
                    return items, w.flush_asked, w.closing
                spooling = bool(w.queue.items) or self._spooling > 0
                urgent = w.closing or w.flush_asked > w.flush_done
                if urgent and (not spooling or time.monotonic() >= w.close_deadline):
                    break
                wait: float | None = 0.05  # the spooler is committing: look again soon
                if not urgent:
                    due = self._due_in()
                    if due is not None and due <= 0:
                        break
                    # Also look when empty: other processes may share the spool.
                    wait = POLL_SECONDS if due is None else min(due, POLL_SECONDS)
                w.cond.wait(wait)
            w.linger(lambda: False)
            return [], w.flush_asked, w.closing

    def _due_in(self) -> float | None:
        backoff = self._not_before - time.monotonic()
        try:
            due = self.spool.next_due_in()
        except Exception:
            return POLL_SECONDS
        if due is None:
            return None
        return max(due, backoff, 0.0)

    def process(self, items: list[QueueItem], closing: bool, flushing: bool) -> bool | None:
        w = self._w
        ok = True
        if items:  # taken off the queue because the spool could not take them
            ok = self._send_unspooled(items, closing)
        while ok and (flushing or closing):
            # A flush promises that every click queued before it arrived or is
            # on disk: what the spool refused is sent from here, batch by batch.
            with w.cond:
                if not w.queue.items or time.monotonic() >= self.guard.failing_until:
                    break
                items, taken = w.queue.pop_batch()
                w.direct += taken
            ok = self._send_unspooled(items, closing)
        drained = self._drain(closing, flushing)
        return ok and drained is not False

    def _send_unspooled(self, items: list[QueueItem], closing: bool) -> bool:
        """Clicks the spool refused: spool them if it takes writes again, else
        deliver them directly; what fails goes back to the queue.

        True when every one of them is on disk or delivered.
        """
        w = self._w
        try:
            records = w.translate(items)
            if time.monotonic() >= self.guard.failing_until:
                try:
                    self.put(records)
                    return True
                except Exception as exc:
                    self.write_failed(exc, len(records))
            if not records:
                return True
            report = w.sender.deliver(records, w.deadline(closing))
            w.queue.put_back([records[i] for i in report.failed])
            return report.complete
        finally:
            w.release_direct(clicks_in(items))

    def _drain(self, closing: bool, flushing: bool = False) -> bool | None:
        """Deliver due spooled clicks, batch by batch, until none is due or one fails.

        True: all due clicks delivered; False: a delivery failed or was rejected.
        """
        w = self._w
        settings = w.settings
        # A flush or a shutdown asks for everything now, backoff or not.
        urgent = closing or flushing
        if time.monotonic() < self._not_before and not urgent:
            return False
        if not self._ack([]):
            return False
        all_ok = True
        while not w.stop.is_set():
            deadline = w.deadline(closing)
            hold = max(1.0, deadline - time.monotonic()) + settings.timeout + 5.0
            # Each batch is acked, rejected-and-acked, or released-and-returned,
            # so even an urgent pass cannot lease the same click twice.
            leased = self.spool.lease(settings.max_batch_size, hold, now_or_later=urgent)
            set_aside = self.spool.take_quarantined()
            if set_aside:
                w.accounting.count_lost(LossReason.QUARANTINED, len(set_aside))
                report_quarantined(logger, set_aside)
            if not leased:
                return all_ok
            report = w.sender.deliver([r for _, r in leased], deadline)
            done = [leased[i][0] for i in report.delivered + report.rejected]
            retry = [leased[i][0] for i in report.failed]
            if not self._ack(done):
                return False
            if retry:
                self._retry_later(retry, report.status in AUTH_STATUSES, report.detail)
                return False
            self._backoff = 0.0
            if report.rejected:
                all_ok = False
            if closing and time.monotonic() >= w.close_deadline:
                return all_ok
        return all_ok

    def _retry_later(self, seqs: list[int], auth: bool, detail: str) -> None:
        self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
        pause = BACKOFF_MAX if auth else self._backoff
        pause *= random.uniform(0.5, 1.0)
        self.spool.release(seqs, pause)
        self._not_before = time.monotonic() + pause
        self._w.warn.warning(
            "spool-retry",
            "AgentSight delivery failing (%s); %d click(s) kept in the spool, next try in %.1fs",
            detail,
            len(seqs),
            pause,
        )

    def _ack(self, seqs: list[int]) -> bool:
        """Forget delivered clicks in the spool (and any whose ack it refused
        before, which it keeps: acked on the next pass, not sent again)."""
        try:
            self.spool.ack(seqs)
        except Exception as exc:
            self.write_failed(exc, len(seqs), "forget %d delivered click(s)")
            return False
        return True
