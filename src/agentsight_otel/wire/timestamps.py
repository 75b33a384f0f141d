"""The ISO 8601 UTC text of a click's timestamp, with one per-second cache.

``track_button``'s returned ``timestamp`` and the one delivered to
AgentSight are the same string by construction: both come from here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, List

_second_cache: List[Any] = [None, ""]  # [unix second, its second_template]


def second_template(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.%06d+00:00`` for one unix second (UTC): the
    slot takes the microseconds, one-argument formatting per click instead of
    a tuple and two conversions."""
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return text + ".%06d+00:00"


def iso_timestamp(unix_nanos: int) -> str:
    """The ISO 8601 UTC text of an event timestamp, always with microseconds.

    The date part is cached per second because formatting it is most of the
    cost of a click on the caller's thread. The cache is shared by every
    thread: a thread that finds another second there formats its own and
    leaves it for the next caller.
    """
    seconds, nanos = divmod(unix_nanos, 1_000_000_000)
    cached = _second_cache
    if cached[0] != seconds:
        template = second_template(seconds)
        cached[1] = template  # written before the key, so a racing reader never
        cached[0] = seconds  # pairs a new second with the previous second's text
    else:
        template = cached[1]
    return template % (nanos // 1000)
