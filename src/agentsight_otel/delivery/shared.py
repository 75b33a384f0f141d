"""One ``Delivery`` per settings in a process, shared by every exporter holding them.

``OTEL_TRACES_EXPORTER=agentsight OTEL_LOGS_EXPORTER=agentsight
opentelemetry-instrument ...`` builds an ``AgentSightSpanExporter`` and an
``AgentSightLogExporter`` from the same environment, so with the same
settings. Two deliveries would open the same SQLite spool twice (two
spoolers claiming each other's rows) and keep two queues, two HTTP pools and
two sets of statistics for one destination. So exporters do not build a
delivery: they lease one from :data:`registry`, keyed by their resolved
settings. The first lease opens it; the last release shuts it down
(reference counting), so the span exporter shutting down at exit first does
not cut off the log exporter's clicks.

Why a registry rather than the log exporter attaching to a span exporter
object: the two are built by the SDK's entry points independently, in either
order, and either may exist alone; the registry needs neither to know the
other. A lease whose exporter is garbage-collected without ``shutdown()`` is
released then, but its delivery is not stopped (a finalizer may not block)
and stays registered: the next exporter with the same settings takes it
over rather than opening the same spool beside it. That release is only
queued by the finalizer and applied under the lock by the next registry
call, since a collection can run the finalizer on a thread that already
holds the lock (inside ``lease()``), where taking it again would deadlock.

A second exporter with the same ``spool_path`` but other settings is
refused: one spool file is one delivery's.

In ``signal="both"`` every click is recorded twice, as a span event and as a
log record, with one click id. Once a delivery is held by a span exporter
and a log exporter, :class:`RecentClicks` remembers the click ids either
one queued lately, and the other drops its copy before queueing it: the
click is submitted, sent and counted once. A delivery held by one kind of
exporter keeps no such memory and pays nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Callable

from agentsight_otel.config import ConfigurationError, ExporterSettings
from agentsight_otel.delivery.pipeline import Delivery
from agentsight_otel.logsafe import printable

#: Click ids a delivery held by both signals remembers: a click's two copies
#: are recorded within one ``track_button`` call, and its span event is
#: queued when its span ends, so this covers spans open for as many clicks.
RECENT_CLICKS = 65_536


class RecentClicks:
    """Click ids queued lately through either signal, bounded, thread-safe."""

    def __init__(self, size: int = RECENT_CLICKS) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        self._size = size

    def unseen(self, click_ids: Iterable[object]) -> list[bool]:
        """For each id, whether it was not queued lately (a non-string: True)."""
        with self._lock:
            known = self._ids
            return [not (type(i) is str and i in known) for i in click_ids]

    def remember(self, click_ids: Iterable[object]) -> None:
        with self._lock:
            for click_id in click_ids:
                if type(click_id) is str and click_id not in self._ids:
                    self._ids.add(click_id)
                    self._order.append(click_id)
            while len(self._order) > self._size:
                self._ids.discard(self._order.popleft())


class Lease:
    """One exporter's hold on a shared delivery; ``release()`` once, at shutdown."""

    def __init__(
        self,
        registry: DeliveryRegistry,
        settings: ExporterSettings,
        delivery: Delivery,
        entry: _Entry,
    ):
        self._registry = registry
        self._settings = settings
        self._entry = entry
        self.delivery = delivery
        self.released = False

    @property
    def recent(self) -> RecentClicks | None:
        """The delivery's memory of recent click ids, once both a span and a
        log exporter hold it; None before (nothing to de-duplicate)."""
        return self._entry.recent

    def release(self) -> bool:
        """Give the delivery back; True when this was its last holder (the
        caller then shuts it down). Idempotent: later calls return False."""
        return self._registry._release(self)


class _Entry:
    __slots__ = ("delivery", "holders", "kinds", "recent")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.holders = 0
        self.kinds: set[str] = set()
        self.recent: RecentClicks | None = None


class DeliveryRegistry:
    """Deliveries by settings, reference-counted by the exporters holding them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[ExporterSettings, _Entry] = {}
        #: Leases of collected exporters, appended by their finalizers (a
        #: deque's append takes no lock of ours) and applied by _collected().
        self._dropped: deque[Lease] = deque()

    def lease(
        self,
        owner: object,
        settings: ExporterSettings,
        build: Callable[[], Delivery],
        kind: str = "spans",
    ) -> Lease:
        """The delivery for ``settings``, built by ``build()`` if none is held.

        ``owner`` is the exporter: when it is garbage-collected without
        releasing, its lease is released for it. ``kind`` is the signal it
        exports (``spans`` or ``logs``): once both hold the delivery, click
        ids are remembered so that a click recorded on both is queued once.

        Raises:
            ConfigurationError: another delivery with other settings already
                uses ``settings.spool_path``; or what ``build()`` raises.
        """
        with self._lock:
            self._collected()
            entry = self._entries.get(settings)
            if entry is None or entry.delivery.closed:
                self._refuse_shared_spool(settings)
                # Built under the lock: two exporters racing must not both open the spool.
                entry = self._entries[settings] = _Entry(build())
            entry.holders += 1
            entry.kinds.add(kind)
            if entry.recent is None and len(entry.kinds) > 1:
                entry.recent = RecentClicks()
            lease = Lease(self, settings, entry.delivery, entry)
        # Not at exit: the SDK's own atexit hook shuts the exporter down, and
        # that shutdown must still find its lease held.
        weakref.finalize(owner, self._dropped.append, lease).atexit = False
        return lease

    def _collected(self) -> None:
        """Apply the releases of collected exporters (with the lock held).

        Their deliveries stay registered, running, for the next exporter
        with the same settings: nothing here may block or stop one."""
        while self._dropped:
            lease = self._dropped.popleft()
            if lease.released:
                continue
            lease.released = True
            entry = self._entries.get(lease._settings)
            if entry is not None and entry.delivery is lease.delivery:
                entry.holders -= 1

    def _refuse_shared_spool(self, settings: ExporterSettings) -> None:
        if settings.spool_path is None:
            return
        for held in self._entries:
            if held.spool_path == settings.spool_path and held != settings:
                raise ConfigurationError(
                    f"spool_path {printable(repr(settings.spool_path), 120)} is already used by "
                    "an AgentSight exporter with other settings in this process; one spool file "
                    "takes one set of settings (give this exporter the same settings, or its "
                    "own spool_path)"
                )

    def _release(self, lease: Lease) -> bool:
        with self._lock:
            self._collected()
            if lease.released:
                return False
            lease.released = True
            entry = self._entries.get(lease._settings)
            if entry is None or entry.delivery is not lease.delivery:
                return False  # its delivery was closed and replaced meanwhile
            entry.holders -= 1
            if entry.holders > 0:
                return False
            del self._entries[lease._settings]
            return True

    def holders(self, settings: ExporterSettings) -> int:
        """Exporters holding the delivery for ``settings`` now (for tests and statistics)."""
        with self._lock:
            self._collected()
            entry = self._entries.get(settings)
            return 0 if entry is None else entry.holders


#: The process's registry: every AgentSight exporter leases from it.
registry = DeliveryRegistry()
