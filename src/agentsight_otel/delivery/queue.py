"""The exporter's bounded memory queue: drop policy, byte bound and wake rule.

An item is anything a source of clicks puts in (a compact span, a list of
click records), with its click count and estimated bytes; the worker turns
a batch of items into records with the source's own function. The queue is
bounded in clicks and in bytes, the first bound reached applying; when full,
``newest`` refuses the new clicks (the OpenTelemetry convention) and
``oldest`` evicts queued ones. Every drop is counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from agentsight_otel.delivery.report import Accounting, LossReason
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.wire.records import ClickRecord, records_bytes

#: (a source's item, its click count, its estimated bytes)
QueueItem = tuple[Any, int, int]


class ClickQueue:
    """Items waiting for the worker; every method but ``put_back`` expects
    ``cond`` held (the worker, the spooler and flushers wait on it)."""

    def __init__(
        self,
        max_clicks: int,
        max_bytes: int,
        batch_size: int,
        drop_policy: str,
        accounting: Accounting,
        warn: RateLimitedLogger,
    ) -> None:
        self.cond = accounting.lock
        self.items: deque[QueueItem] = deque()
        self.clicks = 0
        self.bytes = 0
        self.max_clicks = max_clicks
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self.drop_policy = drop_policy
        self._accounting = accounting
        self._warn = warn

    def put(self, item: Any, clicks: int, nbytes: int) -> bool:
        """Queue an item, or drop by the policy; False when the new clicks were dropped."""
        self._accounting.submitted += clicks
        full = self.clicks + clicks > self.max_clicks or self.bytes + nbytes > self.max_bytes
        if full and not self._make_room(clicks, nbytes):
            return False
        was_empty = not self.items
        before = self.clicks
        self.items.append((item, clicks, nbytes))
        self.clicks = before + clicks
        self.bytes += nbytes
        # Only an offer that can make a sleeper's condition true wakes
        # anyone: the first item in an empty queue (the worker and the
        # spooler wait for one) and the one that fills a batch (the worker
        # lingers for that); waking for every span would cost each ending
        # span a notify and a GIL hand-off. All, when it does: the worker,
        # the spooler and flushers wait on this one condition, and a lone
        # notify() can wake a thread with nothing to do while the one that
        # has work sleeps on (RELIABILITY.md, 5).
        if was_empty or before < self.batch_size <= before + clicks:
            self.cond.notify_all()
        return True

    def _make_room(self, clicks: int, nbytes: int) -> bool:
        if self.drop_policy == "oldest" and clicks <= self.max_clicks and nbytes <= self.max_bytes:
            while self.clicks + clicks > self.max_clicks or self.bytes + nbytes > self.max_bytes:
                _, evicted, freed = self.items.popleft()
                self.clicks -= evicted
                self.bytes -= freed
                self._accounting.lost[LossReason.QUEUE_FULL] += evicted
            return True
        self._accounting.lost[LossReason.QUEUE_FULL] += clicks
        self._warn.warning(
            "queue-full",
            "AgentSight exporter queue is full (%d clicks, about %d bytes; bounds "
            "max_queue_size=%d, max_queue_bytes=%d); dropped %d new click(s). "
            "Delivery is not keeping up: check the endpoint, or use a spool.",
            self.clicks,
            self.bytes,
            self.max_clicks,
            self.max_bytes,
            clicks,
        )
        return False

    def pop_batch(self) -> tuple[list[QueueItem], int]:
        """Up to ``batch_size`` clicks off the queue, and how many."""
        items: list[QueueItem] = []
        taken = 0
        freed = 0
        while self.items and taken < self.batch_size:
            item = self.items.popleft()
            items.append(item)
            taken += item[1]
            freed += item[2]
        self.clicks -= taken
        self.bytes -= freed
        return items, taken

    def put_back(self, records: Sequence[ClickRecord]) -> None:
        """Put clicks not yet on disk nor delivered back at the front (takes the lock).

        They were counted in the bound when offered, so they may take the
        queue past it by at most one batch while new clicks wait.
        """
        if not records:
            return
        nbytes = records_bytes(records)
        with self.cond:
            self.items.appendleft((list(records), len(records), nbytes))
            self.clicks += len(records)
            self.bytes += nbytes
            self.cond.notify_all()

    def clear(self) -> int:
        """Forget everything queued; returns the clicks forgotten."""
        dropped = self.clicks
        self.items.clear()
        self.clicks = 0
        self.bytes = 0
        return dropped


def clicks_in(items: Sequence[QueueItem]) -> int:
    return sum(item[1] for item in items)
