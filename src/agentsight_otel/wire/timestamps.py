"""The ISO 8601 UTC text of a click's timestamp, the date part cached per second.

``track_button``'s returned ``timestamp`` and the one delivered to
AgentSight are the same string by construction: both come from
:func:`cached_formatter`. There are two caches, one code path: the
application's threads format clicks of the current second, while the
exporter's and the bridge's threads encode clicks that are seconds old; one
shared cache would make each overwrite the other's second, and formatting
the date (most of the cost) would move back onto the application's thread.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable


def second_template(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.%06d+00:00`` for one unix second (UTC): the
    slot takes the microseconds, one-argument formatting per click instead of
    a tuple and two conversions."""
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + ".%06d+00:00"


def cached_formatter() -> Callable[[int], str]:
    """A function from unix nanoseconds to ISO 8601 UTC text with microseconds,
    with its own per-second cache (a closure: as cheap to call as a function).

    The cache is shared by every thread that uses this formatter: a thread
    that finds another second there formats its own and leaves it for the
    next caller.
    """
    cached: list[Any] = [None, ""]  # [unix second, its second_template]

    def iso(unix_nanos: int) -> str:
        seconds, nanos = divmod(unix_nanos, 1_000_000_000)
        if cached[0] != seconds:
            template = second_template(seconds)
            cached[1] = template  # written before the key, so a racing reader never
            cached[0] = seconds  # pairs a new second with the previous second's text
        else:
            template = cached[1]
        return template % (nanos // 1000)

    return iso


#: For clicks being recorded, on the application's threads.
iso_timestamp = cached_formatter()
#: For clicks being encoded for delivery, on the exporter's and the bridge's threads.
delivery_timestamp = cached_formatter()
