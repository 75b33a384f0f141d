"""Typed accounting: why a click was lost, what one delivery did, counts since start."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field


class LossReason(enum.Enum):
    """Why a click accepted by the exporter will never reach AgentSight.

    Each value is the key ``statistics()`` reports its count under.
    """

    #: The memory queue was full (drop policy ``newest``: the new clicks;
    #: ``oldest``: the evicted ones).
    QUEUE_FULL = "dropped_queue_full"
    #: Memory mode: still failing when ``retry_deadline`` ran out.
    AFTER_RETRIES = "dropped_after_retries"
    #: Neither delivered nor spooled within the shutdown bound.
    AT_SHUTDOWN = "dropped_at_shutdown"
    #: The spool was full (refused or evicted by the drop policy).
    SPOOL_FULL = "spool_dropped"
    #: A spool record that could not be read back, set aside.
    QUARANTINED = "quarantined"
    #: A click event no ``track_button`` could have written.
    INVALID = "invalid"
    #: AgentSight refused it for good (a 4xx other than 408/429).
    REJECTED = "rejected"


@dataclass
class DeliveryReport:
    """What one ``deliver(records, deadline)`` did, by index into ``records``."""

    delivered: list[int] = field(default_factory=list)
    #: Refused for good: sending them again cannot help.
    rejected: list[int] = field(default_factory=list)
    #: Retryable, but the deadline ran out (or delivery was stopped).
    failed: list[int] = field(default_factory=list)
    #: The last failure, fit for a log line.
    detail: str = ""
    #: The last HTTP status, if any.
    status: int | None = None

    @property
    def complete(self) -> bool:
        """Every record delivered."""
        return not self.failed and not self.rejected


class Accounting:
    """Counts since start, thread-safe; ``statistics()`` is built from them."""

    def __init__(self, lock: threading.Condition) -> None:
        #: Shared with the queue: offers count under the lock they already hold.
        self.lock = lock
        self.submitted = 0
        self.delivered = 0
        self.spool_write_failures = 0
        self.lost: dict[LossReason, int] = dict.fromkeys(LossReason, 0)

    def count_lost(self, reason: LossReason, clicks: int) -> None:
        if clicks:
            with self.lock:
                self.lost[reason] += clicks

    def count_delivered(self, clicks: int) -> None:
        if clicks:
            with self.lock:
                self.delivered += clicks

    def count_submitted(self, clicks: int) -> None:
        with self.lock:
            self.submitted += clicks

    def count_spool_write_failure(self) -> None:
        with self.lock:
            self.spool_write_failures += 1

    def counters(self) -> dict[str, int]:
        """The counters under their ``statistics()`` names."""
        with self.lock:
            counts = {"submitted": self.submitted, "delivered": self.delivered}
            counts.update((reason.value, n) for reason, n in self.lost.items())
            counts["spool_write_failures"] = self.spool_write_failures
        return counts
