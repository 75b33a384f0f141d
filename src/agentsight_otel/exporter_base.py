"""What the span and the log exporter share: settings, a leased delivery, flush and shutdown.

Both facades resolve the same settings (arguments, then the environment) and
lease the process's one delivery for them (delivery/shared.py), so a span
exporter and a log exporter with the same settings share one queue, one
spool, one HTTP pool, one set of retries and one ``statistics()``. Each
facade keeps its own ``shutdown()``: after it, that exporter refuses every
export at once; the delivery itself stops when its last holder shuts down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Callable

from agentsight_otel.config import ConfigurationError, ExporterSettings, resolve_settings
from agentsight_otel.delivery.pipeline import Delivery
from agentsight_otel.delivery.report import Accounting
from agentsight_otel.delivery.shared import Lease, registry
from agentsight_otel.delivery.spool import open_spool
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.semconv import CLICK_ID
from agentsight_otel.wire.logs import records_from_queue_items
from agentsight_otel.wire.records import ClickRecord

logger = logging.getLogger("agentsight_otel")

#: How long ``shutdown()`` may take by default, delivery included. The SDK
#: calls it from ``atexit``; a hung exit is the complaint this bounds.
DEFAULT_SHUTDOWN_TIMEOUT_MILLIS = 5_000


class DeliveringExporter:
    """The settings, lease and lifecycle common to AgentSight's exporters."""

    #: The signal this exporter takes clicks from (``spans`` or ``logs``).
    _signal_kind = "spans"

    def _start(
        self,
        arguments: dict[str, Any],
        shutdown_timeout_millis: float,
        like: DeliveringExporter | None = None,
    ) -> None:
        """Resolve the settings (``like``'s, when given) and lease their delivery."""
        self._warn = RateLimitedLogger(logger)
        self._shutdown_timeout = shutdown_timeout_millis / 1000.0
        self.disabled_reason: str | None = None
        self._settings: ExporterSettings | None = None
        self._delivery: Delivery | None = None
        self._lease: Lease | None = None
        self._closed = False
        try:
            if like is None:
                settings = resolve_settings(**arguments)
            elif like._settings is None:
                raise ConfigurationError(str(like.disabled_reason))
            else:
                settings = like._settings
            warn = self._warn

            def build() -> Delivery:
                spool = open_spool(settings) if settings.spool_path else None
                return Delivery(settings, spool, records_from_queue_items, warn)

            self._lease = registry.lease(self, settings, build, self._signal_kind)
        except ConfigurationError as exc:
            self.disabled_reason = str(exc)
            logger.error("AgentSight exporter disabled: %s", exc)
            return
        self._settings = settings
        self._delivery = self._lease.delivery

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._settings is None:
            return f"{name}(disabled={self.disabled_reason!r})"
        s = self._settings
        return (
            f"{name}(endpoint={s.endpoint!r}, api={s.api!r}, "
            f"environment={s.environment!r}, spool_path={s.spool_path!r})"
        )

    def _offer(self, item: Any, clicks: int, nbytes: int) -> bool:
        if self._delivery is None or self._closed:
            return False
        return self._delivery.offer(item, clicks, nbytes)

    def _offer_once(
        self,
        item: Any,
        held: Sequence[tuple[Any, ...]],
        rebuild: Callable[[list[tuple[Any, ...]]], Any],
        nbytes: int,
    ) -> bool:
        """Offer ``item``, whose clicks are ``held`` (each a tuple led by the
        click's attributes), without those the other signal already queued
        (``signal="both"``: delivery/shared.py); ``rebuild(kept)`` makes the
        item of the rest. Only a delivery held by both signals checks."""
        recent = self._lease.recent if self._lease is not None else None
        if recent is None:
            return self._offer(item, len(held), nbytes)
        ids = [click[0].get(CLICK_ID) for click in held]
        fresh = recent.unseen(ids)
        if not all(fresh):
            kept = [click for click, new in zip(held, fresh) if new]
            if not kept:
                return True  # every click is queued already, through the other signal
            nbytes = nbytes * len(kept) // len(held)
            ids = [click_id for click_id, new in zip(ids, fresh) if new]
            item, held = rebuild(kept), kept
        accepted = self._offer(item, len(held), nbytes)
        if accepted:
            recent.remember(ids)
        return accepted

    def accept(self, records: list[ClickRecord]) -> bool:
        """Take records for delivery, durably when there is a spool (the OTLP bridge).

        With a spool the records are on disk when this returns True, so a
        sender may consider them delivered; without one they are queued in
        memory, as ``offer`` does. False means refused (full, disabled, shut
        down): the sender should retry later. Does I/O: not for the
        application's request path.
        """
        return self._delivery is not None and not self._closed and self._delivery.accept(records)

    def backlog(self) -> int:
        """Clicks accepted but not yet delivered (queued in memory plus spooled)."""
        stats = self.statistics()
        return stats["queued"] + max(0, stats.get("spooled", 0))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver everything queued so far; True if it all arrived in time.

        True means every click offered before the call was delivered or is
        durably in the spool. The delivery may be shared with another
        exporter of the same settings: its clicks are flushed too.
        """
        if self._delivery is None or self._closed or self._delivery.closed:
            return self._delivery is not None
        return self._delivery.flush(timeout_millis / 1000.0)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Flush what is queued within the timeout, then stop. Idempotent.

        ``timeout_millis`` can only shorten the exporter's own bound
        (``shutdown_timeout_millis``): the SDK's batch processors pass what
        is left of their 30 s, which would hold the exit that long while
        AgentSight is unreachable. When another exporter still shares the
        delivery, this one only flushes and lets go; the last one stops it.
        """
        if self._delivery is None or self._lease is None or self._closed:
            return
        self._closed = True
        timeout = self._shutdown_timeout
        if timeout_millis is not None:
            timeout = min(timeout, max(0.0, timeout_millis / 1000.0))
        if not self._lease.release():
            # Still another exporter's: what is queued goes on being delivered.
            self._delivery.flush(timeout)
            return
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
        and what waits now: queued, queued_bytes, spooled. Shared by every
        exporter with the same settings (they share one delivery)."""
        if self._delivery is None:
            return {**Accounting(threading.Condition()).counters(), "queued": 0, "queued_bytes": 0}
        return self._delivery.statistics()
