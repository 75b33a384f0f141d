"""When the spool itself fails: refused writes, and records that cannot be read back.

The exporter's spool is a file, and files fail: the disk fills up, a quota
or ``RLIMIT_FSIZE`` is reached, an I/O error comes back. A click the spool
refuses is kept in the exporter's memory queue and sent directly meanwhile
(spooled.py); :class:`SpoolWriteGuard` holds what that needs — whether the
spool is to be left alone for now, the backoff before the next try, how many
writes failed — and writes the one log line that names the real error.
:func:`report_quarantined` is the log line for records the spool set aside
because they could not be read back (spool.py moves them to its quarantine
table), one per lease, each click id named once.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time

from agentsight_otel.logsafe import printable
from agentsight_otel.ratelimit import RateLimitedLogger

#: Pause after a refused write before the spool is tried again. Short and
#: fixed, not growing: a refused local write costs little (SQLite fails before
#: it writes), while every second the spool is left alone after the disk has
#: room again is a second in which a crash loses the clicks held in memory.
RETRY_SECONDS = 0.5
#: Click ids named in one log line about quarantined records.
QUARANTINE_LOGGED = 20


class SpoolWriteGuard:
    """Whether the spool takes writes; thread-safe (spooler and worker share it)."""

    def __init__(self, path: str, warn: RateLimitedLogger) -> None:
        self.path = path
        self._warn = warn
        self._lock = threading.Lock()
        #: Monotonic time before which the spool is not tried again.
        self.failing_until = 0.0
        self.failures = 0

    def failing(self) -> bool:
        return time.monotonic() < self.failing_until

    def failed(self, exc: BaseException, clicks: int, doing: str = "take %d click(s)") -> None:
        """A write was refused: back off, count it, log the real error (rate-limited).

        SQLite reports ``EFBIG`` and ``ENOSPC`` alike as "disk I/O error"
        (``SQLITE_IOERR_WRITE``) or ``SQLITE_FULL``; the free space on the
        spool's file system goes in the line so the cause is plain.
        """
        with self._lock:
            self.failures += 1
            self.failing_until = time.monotonic() + RETRY_SECONDS
        try:
            free = f"{shutil.disk_usage(os.path.dirname(self.path) or '.').free} bytes free there"
        except OSError:
            free = "free space unknown"
        self._warn.error(
            "spool-write",
            "AgentSight spool %s cannot %s: %s (%s; %s); clicks are kept in memory and "
            "sent directly meanwhile, and the spool is tried again in %.1fs",
            printable(self.path),
            doing % clicks,
            printable(getattr(exc, "sqlite_errorname", None) or type(exc).__name__),
            printable(exc),
            free,
            RETRY_SECONDS,
        )

    def succeeded(self) -> None:
        if self.failing_until:
            with self._lock:
                self.failing_until = 0.0


def report_quarantined(logger: logging.Logger, set_aside: list[tuple[str, str]]) -> None:
    """Log records the spool set aside, each click id once (not rate-limited)."""
    if not set_aside:
        return
    shown = ", ".join(
        f"{printable(click_id, 64)} ({printable(reason, 80)})"
        for click_id, reason in set_aside[:QUARANTINE_LOGGED]
    )
    more = len(set_aside) - QUARANTINE_LOGGED
    logger.error(
        "AgentSight spool: set aside %d unreadable record(s), kept in its quarantine "
        "table and never sent: %s%s",
        len(set_aside),
        shown,
        f" and {more} more" if more > 0 else "",
    )
