"""Unique click ids, cheaply, without a system call per click."""

from __future__ import annotations

import itertools
import os


class ClickIds:
    """A random per-process prefix and a counter (``prefix + counter as 16
    hex``, written inline in ``Tracker.track_button``).

    64 random bits name the process, 64 counter bits the click: 32 hex
    characters, unique without a system call per click (``os.urandom`` per
    click is a measurable share of ``track_button``). The prefix is renewed
    in a forked child, so parent and child never share ids.
    """

    def __init__(self) -> None:
        self.renew()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()


#: The process's one source of click ids, shared by every Tracker.
click_ids = ClickIds()
