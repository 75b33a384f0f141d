"""The ordering trap: ``configure()`` set the global tracer provider, then the application tried to.

OpenTelemetry keeps the first global tracer provider it is given. When
``configure()`` finds none, it sets a new SDK provider; an application that
calls ``trace.set_tracer_provider(its_own)`` afterwards is then ignored, with
only the API's "Overriding of current TracerProvider is not allowed" warning:
its exporters never see a span. The API offers no hook for that call, so we
watch for the API's own log record (a filter on the ``opentelemetry.trace``
logger, which lets the record through) and, when the global provider is
still the one ``configure()`` set, log once what happened and the fix.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from opentelemetry import trace

logger = logging.getLogger("agentsight_otel")

#: What the API logs when a second provider is refused (opentelemetry.trace).
_OVERRIDE_REFUSED = "Overriding of current TracerProvider is not allowed"

TRAP_WARNING = (
    "agentsight_otel.configure() ran before the application's "
    "trace.set_tracer_provider(...): OpenTelemetry keeps the first provider set, "
    "which was configure()'s, so the application's TracerProvider (and every "
    "exporter on it) is ignored. Fix: call trace.set_tracer_provider(...) before "
    "agentsight_otel.configure(), which then adds to it, or call "
    "configure(tracer_provider=your_provider) after setting it."
)


class _LateProviderWatch(logging.Filter):
    """Lets every record through; says once when the trap has sprung."""

    def __init__(self) -> None:
        super().__init__()
        self._ours: weakref.ReferenceType[Any] | None = None
        self._warned = False

    def watch(self, provider: Any) -> None:
        self._ours = weakref.ref(provider)

    def filter(self, record: logging.LogRecord) -> bool:
        ours = self._ours() if self._ours is not None else None
        if (
            not self._warned
            and ours is not None
            and record.msg == _OVERRIDE_REFUSED
            and trace.get_tracer_provider() is ours
        ):
            self._warned = True
            logger.warning(TRAP_WARNING)
        return True


_watch: _LateProviderWatch | None = None
_lock = threading.Lock()


def watch_for_a_later_provider(provider: Any) -> None:
    """``configure()`` made ``provider`` the global one: warn if the application tries later."""
    global _watch
    with _lock:
        if _watch is None:
            _watch = _LateProviderWatch()
            logging.getLogger(trace.__name__).addFilter(_watch)
        _watch.watch(provider)
