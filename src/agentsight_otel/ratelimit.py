"""Warnings that cannot flood a log.

An outage makes every batch fail the same way; one line per failure would
bury the line that matters. Each kind of warning is emitted at most once per
interval, and the next one says how many were suppressed in between.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class RateLimitedLogger:
    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int]] = {}  # key -> (last emitted, suppressed)

    def warning(self, key: str, message: str, *args: Any) -> bool:
        """Log unless ``key`` was logged within the interval; True if logged."""
        return self._log(logging.WARNING, key, message, *args)

    def error(self, key: str, message: str, *args: Any) -> bool:
        return self._log(logging.ERROR, key, message, *args)

    def _log(self, level: int, key: str, message: str, *args: Any) -> bool:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._state.get(key, (-float("inf"), 0))
            if now - last < self._interval:
                self._state[key] = (last, suppressed + 1)
                return False
            self._state[key] = (now, 0)
        if suppressed:
            message += " (%d similar message(s) suppressed in the last %.0fs)"
            args = (*args, suppressed, self._interval)
        self._logger.log(level, message, *args)
        return True
