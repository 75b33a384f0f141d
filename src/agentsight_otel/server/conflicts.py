"""Duplicate click ids that arrive with different content.

A click id is stored once (``INSERT OR IGNORE``), which is right for a
redelivery: a retry, a replayed spool, the same click in a new span. It is
wrong to be silent about an id that comes back with *other* content —
another conversation, another label: that is a client reusing ids, and the
second click is lost. The store keeps the first copy either way; this module
finds the rows that disagree with it so the receiver can count them, name
them (a bounded few) and log a warning.

What must agree: conversation, ``button_event``, label, value, the instant
of the click, and the metadata as a JSON document. The span and trace ids
may differ (a replay wraps the same click in a new span), and so may the
spelling of the timestamp and of the metadata JSON.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from agentsight_otel.logsafe import printable

#: Most conflicting click ids named in one answer (the count is exact).
MAX_REPORTED_CONFLICTS: Final = 20
#: Most of them named in the warning line.
MAX_LOGGED_CONFLICTS: Final = 5

#: Ids per ``IN (...)`` query, well under SQLite's bound-parameter limit.
_CHUNK: Final = 500

# Positions in a ClickRow (see store.NewClick) of what must agree.
_CONVERSATION, _EVENT, _LABEL, _VALUE, _METADATA, _TS_US = 1, 2, 3, 4, 6, 9

Stored = tuple[str, str, str, str, int, str]


def conflicting_ids(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[str]:
    """The ids of ``rows`` (one per row, in order) whose stored click differs.

    Call after the rows were inserted, on the writer inside its transaction:
    a row that was just stored matches itself, so only the ignored
    duplicates that disagree with the kept copy are listed.
    """
    stored: dict[str, Stored] = {}
    ids = list({row[0] for row in rows})
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for click_id, *content in conn.execute(
            "SELECT click_id, conversation_id, button_event, label, value, ts_us, metadata"
            f" FROM clicks WHERE click_id IN ({marks})",
            chunk,
        ):
            stored[click_id] = tuple(content)
    found: list[str] = []
    for row in rows:
        kept = stored.get(row[0])
        if kept is not None and _differs(row, kept):
            found.append(row[0])
    return found


def _differs(row: Sequence[Any], kept: Stored) -> bool:
    conversation, event, label, value, ts_us, metadata = kept
    if (row[_CONVERSATION], row[_EVENT], row[_LABEL], row[_VALUE], row[_TS_US]) != (
        conversation,
        event,
        label,
        value,
        ts_us,
    ):
        return True
    if row[_METADATA] == metadata:
        return False
    try:  # both were validated as JSON objects before they got here
        return bool(json.loads(row[_METADATA]) != json.loads(metadata))
    except ValueError:
        return True


def report(count: int, ids: Sequence[str]) -> dict[str, Any]:
    """The answer's fields: the exact count and the first few ids."""
    return {
        "duplicates_conflicting": count,
        "conflicting_click_ids": list(ids[:MAX_REPORTED_CONFLICTS]),
    }


def warn(logger: logging.Logger, route: str, ids: Sequence[str]) -> None:
    """One warning line for a request's conflicts; ids are client text, so escaped."""
    if not ids:
        return
    shown = ", ".join(printable(click_id, 64) for click_id in ids[:MAX_LOGGED_CONFLICTS])
    more = len(ids) - MAX_LOGGED_CONFLICTS
    logger.warning(
        "%s: %d duplicate click id(s) arrived with different content than the stored click;"
        " the stored copy was kept and the new content dropped: %s%s",
        route,
        len(ids),
        shown,
        f" (and {more} more)" if more > 0 else "",
    )
