"""Click insights for the local receiver: the numbers behind ``/insights/``.

For each ``button_event``: clicks per label (counts and shares), clicks over
time in buckets of a minute, an hour or a day (whichever keeps the chart
within :data:`MAX_TIME_BUCKETS` columns), and, across events, the journeys of
the most recently active conversations (their clicks in time order).

What one request returns is bounded whatever the size of the database: every
number is aggregated by SQLite (``GROUP BY``, window functions) and only the
rows shown come back to Python -- at most ``events`` button events,
``labels`` labels each, :data:`MAX_TIME_BUCKETS` buckets each, ``journeys``
conversations of ``steps`` clicks. The queries are a fixed five, not one
per event. The totals and the journeys read the store's (conversation,
time) index alone; the events with their labels, and the clicks over time,
are one pass over the table and a sort each, which is linear in the clicks
stored: two to five seconds each for a million clicks on a busy two-core
machine. No index spares those passes on purpose: one on (event, label,
time) measured 40-65% dearer inserts, and ingest is the receiver's hot path
while this page is opened now and then. The queries run on one
read connection in one transaction, so the numbers agree with each other
even while clicks arrive. :func:`read_insights` is the entry point;
:meth:`Insights.as_json` is the shape ``GET /api/insights/`` serves.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from agentsight_otel.server.insights_values import (
    BUTTON_EVENT_PARAM,
    EVENTS_PARAM,
    JOURNEYS_PARAM,
    LABELS_PARAM,
    MAX_BUTTON_EVENT_CHARS,
    OFFSET_PARAM,
    STEPS_PARAM,
    EventInsight,
    InsightLimits,
    Insights,
    Journey,
    JourneyStep,
    LabelCount,
    TimeBucket,
    Timeline,
    iso_of_us,
)
from agentsight_otel.server.store import Store

__all__ = [
    "BUTTON_EVENT_PARAM",
    "EVENTS_PARAM",
    "JOURNEYS_PARAM",
    "LABELS_PARAM",
    "MAX_BUTTON_EVENT_CHARS",
    "MAX_TIME_BUCKETS",
    "OFFSET_PARAM",
    "STEPS_PARAM",
    "TIME_UNITS",
    "EventInsight",
    "InsightLimits",
    "Insights",
    "Journey",
    "JourneyStep",
    "LabelCount",
    "TimeBucket",
    "Timeline",
    "bucket_window",
    "iso_of_us",
    "read_insights",
]

#: Most columns of one clicks-over-time chart: a minute per column for a
#: span of up to two hours, an hour for up to five days, a day beyond that
#: (then only the last 120 days are drawn, and the clicks before are counted).
MAX_TIME_BUCKETS: Final = 120

_MINUTE_US: Final = 60_000_000
#: The bucket units tried in order, the first that fits wins.
TIME_UNITS: Final = (
    ("minute", _MINUTE_US),
    ("hour", 60 * _MINUTE_US),
    ("day", 24 * 60 * _MINUTE_US),
)

#: The bucket index that collects the clicks before a chart's first bucket.
_EARLIER: Final = -1


def bucket_window(first_us: int, last_us: int) -> tuple[str, int, int, int]:
    """(unit name, unit in µs, first bucket start, bucket count) for clicks in ``first..last``.

    The smallest unit of :data:`TIME_UNITS` whose buckets, aligned to UTC
    minute/hour/day boundaries, number at most :data:`MAX_TIME_BUCKETS`; for a
    longer span, the last :data:`MAX_TIME_BUCKETS` days.
    """
    for name, unit_us in TIME_UNITS:
        start = first_us // unit_us * unit_us
        end = last_us // unit_us * unit_us
        count = (end - start) // unit_us + 1
        if count <= MAX_TIME_BUCKETS:
            return name, unit_us, start, count
    # Even days are too many: the latest MAX_TIME_BUCKETS days.
    return name, unit_us, end - (MAX_TIME_BUCKETS - 1) * unit_us, MAX_TIME_BUCKETS


def read_insights(store: Store, limits: InsightLimits | None = None) -> Insights:
    """Aggregate the store's clicks into :class:`Insights`, bounded by ``limits``."""
    limits = limits or InsightLimits()
    only = _Only(limits.button_event)
    with store.snapshot() as conn:
        # Both counted on the conversation index alone (it covers them)
        # unless one event is asked for.
        clicks, conversations = conn.execute(
            f"SELECT count(*), count(DISTINCT conversation_id) FROM clicks {only.where}",
            only.params,
        ).fetchone()
        page, labels, events_total = _events_page(conn, limits, only)
        windows = {
            event: bucket_window(first, last)
            for event, _, first, last in page
            if first is not None and last is not None
        }
        buckets = _buckets(conn, windows)
        journeys = _journeys(conn, limits.journeys, limits.steps, only)
    events = []
    for event, count, first, last in page:
        shown, distinct = labels[event]
        listed = sum(row.clicks for row in shown)
        timeline = None
        if event in windows:
            unit, unit_us, start, n_buckets = windows[event]
            per_bucket = buckets.get(event, {})
            timeline = Timeline(
                unit=unit,
                unit_us=unit_us,
                buckets=[
                    TimeBucket(start + i * unit_us, per_bucket.get(i, 0)) for i in range(n_buckets)
                ],
                earlier_clicks=per_bucket.get(_EARLIER, 0),
            )
        events.append(
            EventInsight(
                button_event=event,
                clicks=int(count),
                first_us=first,
                last_us=last,
                labels=shown,
                distinct_labels=distinct,
                other_clicks=int(count) - listed,
                timeline=timeline,
            )
        )
    return Insights(int(clicks), int(conversations), int(events_total), limits, events, journeys)


class _Only:
    """The SQL that keeps one ``button_event``'s clicks, or all when ``None``."""

    def __init__(self, button_event: str | None) -> None:
        chosen = button_event is not None
        self.where = "WHERE button_event = ?" if chosen else ""
        # With an event to match the conversation index no longer covers the
        # query, and walking it reads the rows in random order: a pass over
        # the table measured ten times faster (0.3 s at a million clicks).
        self.table = "clicks NOT INDEXED" if chosen else "clicks"
        self.also = "AND button_event = ?" if chosen else ""
        self.params: tuple[str, ...] = (button_event,) if button_event is not None else ()


def _count_events(conn: sqlite3.Connection, offset: int, only: _Only) -> int:
    # Only asked when the page came back empty: no events, or an offset past them.
    if offset == 0:
        return 0
    (count,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM clicks {only.where} GROUP BY button_event)",
        only.params,
    ).fetchone()
    return int(count)


#: The page of events and their most clicked labels, from one pass over the
#: table: per (event, label) counts first, the events summed from those.
_EVENTS_PAGE: Final = (
    "WITH pairs AS (SELECT button_event, label, count(*) AS n, min(ts_us) AS first_us,"
    " max(ts_us) AS last_us FROM clicks {where} GROUP BY button_event, label),"
    " page AS (SELECT button_event, sum(n) AS n, min(first_us) AS first_us,"
    " max(last_us) AS last_us, count(*) AS labels, count(*) OVER () AS events"
    " FROM pairs GROUP BY button_event ORDER BY n DESC, button_event LIMIT ? OFFSET ?),"
    " ranked AS (SELECT button_event, label, n, row_number() OVER"
    " (PARTITION BY button_event ORDER BY n DESC, label) AS r FROM pairs"
    " WHERE button_event IN (SELECT button_event FROM page))"
    " SELECT page.button_event, page.n, page.first_us, page.last_us, page.labels,"
    " page.events, ranked.label, ranked.n FROM page JOIN ranked USING (button_event)"
    # At least one label per event, so a limit of 0 still lists the event.
    " WHERE ranked.r <= max(?, 1) ORDER BY page.n DESC, page.button_event, ranked.r"
)


def _events_page(
    conn: sqlite3.Connection, limits: InsightLimits, only: _Only
) -> tuple[
    list[tuple[str, int, int | None, int | None]],
    dict[str, tuple[list[LabelCount], int]],
    int,
]:
    """(events shown: name, clicks, first, last; event -> (labels shown, label count); events)."""
    rows = conn.execute(
        _EVENTS_PAGE.format(where=only.where),
        (*only.params, limits.events, limits.offset, limits.labels),
    ).fetchall()
    page: list[tuple[str, int, int | None, int | None]] = []
    labels: dict[str, tuple[list[LabelCount], int]] = {}
    for event, clicks, first, last, distinct, _, label, n in rows:
        if event not in labels:
            page.append((event, int(clicks), first, last))
            labels[event] = ([], int(distinct))
        shown = labels[event][0]
        if len(shown) < limits.labels:
            shown.append(LabelCount(label, int(n), int(n) / int(clicks)))
    events_total = int(rows[0][5]) if rows else _count_events(conn, limits.offset, only)
    return page, labels, events_total


def _buckets(
    conn: sqlite3.Connection, windows: dict[str, tuple[str, int, int, int]]
) -> dict[str, dict[int, int]]:
    """event -> {bucket index: clicks}, empty buckets left out, in one query.

    Clicks before a window cut short are counted under :data:`_EARLIER`;
    clicks without a time in none.
    """
    if not windows:
        return {}
    shown = ", ".join("(?, ?, ?)" for _ in windows)
    params: list[Any] = []
    for event, (_, unit_us, start, _count) in windows.items():
        params += [event, start, unit_us]
    rows = conn.execute(
        f"WITH shown(button_event, start_us, unit_us) AS (VALUES {shown})"
        " SELECT c.button_event, CASE WHEN c.ts_us < s.start_us THEN ?"
        " ELSE (c.ts_us - s.start_us) / s.unit_us END AS bucket, count(*)"
        # CROSS JOIN keeps clicks the outer loop: one pass over the table
        # instead of one per event shown.
        " FROM clicks AS c CROSS JOIN shown AS s ON c.button_event = s.button_event"
        " WHERE c.ts_us IS NOT NULL GROUP BY c.button_event, bucket",
        (*params, _EARLIER),  # in the order of the marks in the text
    ).fetchall()
    found: dict[str, dict[int, int]] = {}
    for event, bucket, n in rows:
        found.setdefault(event, {})[int(bucket)] = int(n)
    return found


def _journeys(
    conn: sqlite3.Connection, conversations: int, steps: int, only: _Only
) -> list[Journey]:
    """The ``conversations`` most recently clicked, each with its ``steps`` newest clicks."""
    # Read from the (conversation, time) index alone, never the rows, unless
    # one event is asked for.
    recent = conn.execute(
        f"SELECT conversation_id, count(*), max(ts_us) AS newest FROM {only.table} {only.where}"
        " GROUP BY conversation_id ORDER BY newest DESC, conversation_id LIMIT ?",
        (*only.params, conversations),
    ).fetchall()
    if not recent or steps == 0:
        return [Journey(conversation_id, int(n), []) for conversation_id, n, _ in recent]
    marks = ", ".join("?" * len(recent))
    rows = conn.execute(
        "SELECT conversation_id, button_event, label, value, timestamp, ts_us, click_id"
        " FROM (SELECT *, row_number() OVER (PARTITION BY conversation_id"
        " ORDER BY ts_us DESC, rowid DESC) AS r, rowid AS row_order FROM clicks"
        f" WHERE conversation_id IN ({marks}) {only.also}) WHERE r <= ?"
        " ORDER BY conversation_id, ts_us, row_order",
        (*[row[0] for row in recent], *only.params, steps),
    ).fetchall()
    by_conversation: dict[str, list[JourneyStep]] = {}
    for conversation_id, *step in rows:
        by_conversation.setdefault(conversation_id, []).append(JourneyStep(*step))
    return [
        Journey(conversation_id, int(n), by_conversation.get(conversation_id, []))
        for conversation_id, n, _ in recent
    ]
