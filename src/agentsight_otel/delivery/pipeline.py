"""``Delivery``: one exporter's queue and worker, from any source of clicks.

A source (the span exporter today, a log-record exporter next) builds one
with its settings, its spool and its ``translate`` function (queue items ->
click records), then offers items; everything after that is here. The
threads, the HTTP session and the lock are rebuilt in a forked child, which
starts with an empty queue: the parent's queued clicks stay the parent's,
so they are sent once.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from agentsight_otel.config import ExporterSettings
from agentsight_otel.delivery.queue import ClickQueue
from agentsight_otel.delivery.report import Accounting
from agentsight_otel.delivery.spool import Spool
from agentsight_otel.delivery.spooled import SpoolMode
from agentsight_otel.delivery.worker import DeliveryWorker, Translate
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.wire.records import ClickRecord, records_bytes


class Delivery:
    """Offers in, deliveries out; ``closed`` once shut down."""

    def __init__(
        self,
        settings: ExporterSettings,
        spool: Spool | None,
        translate: Translate,
        warn: RateLimitedLogger,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self._translate = translate
        self._warn = warn
        self.accounting = Accounting(threading.Condition())
        self.closed = False
        self._build()
        _after_fork_registry.add(self)
        if self.spool_size() not in (0, None):
            # Clicks left by an earlier process (a crash, a restart): deliver
            # them now, not only once this process has clicks of its own.
            with self.accounting.lock:
                self.worker.start()

    def _build(self) -> None:
        # Also in a forked child: a new HTTP session (a pooled socket shared
        # with the parent would interleave two processes' requests) and a new
        # lock (a parent thread may have held it at the fork).
        settings = self.settings
        self.accounting.lock = threading.Condition()
        self.queue = ClickQueue(
            settings.max_queue_size,
            settings.max_queue_bytes,
            settings.max_batch_size,
            settings.drop_policy,
            self.accounting,
            self._warn,
        )
        self.worker = DeliveryWorker(
            settings, self.queue, self.accounting, self._translate, self._warn, self.spool
        )

    def offer(self, item: Any, clicks: int, nbytes: int) -> bool:
        """Queue one item; cheap and non-blocking. False when refused."""
        worker = self.worker
        with self.accounting.lock:
            if self.closed or worker.closing or not self.queue.put(item, clicks, nbytes):
                return False
            if not worker.started:
                worker.start()
        return True

    def accept(self, records: Sequence[ClickRecord]) -> bool:
        """Records, on disk when this returns True if there is a spool; else queued."""
        if self.closed:
            return False
        if not records:
            return True
        mode = self.worker.mode
        if isinstance(mode, SpoolMode):
            return self.worker.accept_durably(mode, records)
        queued = list(records)
        return self.offer(queued, len(queued), records_bytes(queued))

    def flush(self, timeout: float) -> bool:
        """Deliver everything queued so far within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.accounting.lock:
            idle = not self.worker.started and not self.queue.items
            if idle and self.spool_size() in (0, None):
                return True
            return self.worker.flush(deadline)

    def shutdown(self, timeout: float) -> tuple[int, str]:
        """Deliver within ``timeout`` seconds, then stop; returns the clicks
        dropped at shutdown and the last failure."""
        self.closed = True
        return self.worker.shutdown(time.monotonic() + timeout)

    def statistics(self) -> dict[str, int]:
        stats = self.accounting.counters()
        stats.update(self.worker.gauges())
        return stats

    def spool_size(self) -> int | None:
        """Clicks in the spool, -1 when it cannot be read, None without a spool."""
        mode = self.worker.mode
        return mode.size() if isinstance(mode, SpoolMode) else None


class _AfterForkRegistry:
    """Rebuilds every live delivery's threads, sockets and lock in a forked child."""

    def __init__(self) -> None:
        self._deliveries: weakref.WeakSet[Delivery] = weakref.WeakSet()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def add(self, delivery: Delivery) -> None:
        self._deliveries.add(delivery)

    def _after_fork(self) -> None:
        for delivery in list(self._deliveries):
            delivery._build()


_after_fork_registry = _AfterForkRegistry()
