"""The local receiver's click store: one SQLite file, stdlib ``sqlite3``.

Part of the development and test peer (see :mod:`agentsight_otel.server`),
so the design favours being obviously correct over scale:

* WAL mode, so the HTML page and read API (each call on its own short-lived
  connection) never wait for, or block, the writer.
* One writer connection behind a lock: SQLite allows one writer anyway, and
  serialising in Python turns "database is locked" retries into a plain wait.
* ``click_id`` is the primary key and rows go in with ``INSERT OR IGNORE``:
  a click delivered twice (a retry after a lost response, a spool replayed
  after a crash) is stored once. That is the property the tests lean on.
* A whole request is one ``executemany`` in one transaction: a 1,000-click
  ingest body costs one commit, not 1,000.
* ``synchronous=NORMAL``: in WAL mode a commit survives the process being
  killed, only not a power cut — the right trade for a dev tool.

Default location: :func:`~agentsight_otel.server.paths.default_db_path`.
The values it stores and returns are :mod:`~agentsight_otel.server.click_rows`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from agentsight_otel.private_files import create_private_file, make_private_dirs
from agentsight_otel.server.click_rows import (
    ButtonGroup,
    Click,
    ClickRow,
    ConversationSummary,
    InsertResult,
    NewClick,
    click_from_row,
    epoch_us,
    parse_timestamp,
    utc_now_iso,
)
from agentsight_otel.server.conflicts import conflicting_ids
from agentsight_otel.server.paths import DATA_DIR_ENV, DB_FILENAME, default_db_path

__all__ = [
    "DATA_DIR_ENV",
    "DB_FILENAME",
    "SOURCES",
    "SOURCE_BUTTONS",
    "SOURCE_INGEST",
    "ButtonGroup",
    "Click",
    "ClickRow",
    "ConversationSummary",
    "InsertResult",
    "NewClick",
    "Store",
    "default_db_path",
    "epoch_us",
    "parse_timestamp",
    "utc_now_iso",
]

SOURCE_BUTTONS: Final = "buttons"
SOURCE_INGEST: Final = "ingest"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS clicks (
    click_id        TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    button_event    TEXT NOT NULL,
    label           TEXT NOT NULL,
    value           TEXT NOT NULL,
    timestamp       TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    trace_id        TEXT,
    span_id         TEXT,
    source          TEXT NOT NULL CHECK (source IN ('buttons', 'ingest')),
    received_at     TEXT NOT NULL,
    -- `timestamp` is kept exactly as received; this is the same instant as
    -- epoch microseconds so "newest first" does not depend on every client
    -- spelling ISO 8601 the same way ("Z" vs "+00:00", fraction digits).
    ts_us           INTEGER
);
-- One index, on the conversation: another one (event, time) measurably slows
-- the 1,000-row inserts, and one conversation's clicks sort in memory in no
-- time. With the click time in it, "conversations, most recently clicked
-- first" (the insights' journeys) reads this index alone, not every row: at
-- a million clicks, half a second instead of eight; inserts measured within
-- 5% (the noise of the shared machine).
CREATE INDEX IF NOT EXISTS clicks_by_conversation_time ON clicks (conversation_id, ts_us);
-- Its prefix, the index of databases made before: built over once, on open.
DROP INDEX IF EXISTS clicks_by_conversation;
"""

#: ``source`` and ``received_at`` are the same for every row of a request;
#: they are bound per row like the rest (see :meth:`Store.insert_clicks`).
_INSERT: Final = (
    "INSERT OR IGNORE INTO clicks (click_id, conversation_id, button_event, label, value,"
    " timestamp, metadata, trace_id, span_id, ts_us, source, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SOURCES: Final = (SOURCE_BUTTONS, SOURCE_INGEST)


class Store:
    """SQLite-backed click store; safe to share between threads.

    ``path`` must be a file (readers open their own connections, which an
    in-memory database would not share). It is made absolute here, once:
    readers open it by ``file:`` URI, which a relative path cannot be, and a
    later change of working directory must not move the database. Missing
    parent directories are created 0700 and a new database file 0600
    (:mod:`~agentsight_otel.private_files`): clicks are user data.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()
        make_private_dirs(self.path.parent)
        create_private_file(self.path)
        self._lock = threading.Lock()
        self._closed = False
        # check_same_thread=False: Starlette runs our calls on worker threads;
        # the lock, not thread affinity, is what keeps the writer consistent.
        self._writer = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None
        )
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=NORMAL")
        self._writer.execute("PRAGMA busy_timeout=5000")
        # Click ids are random, so every 1,000-row commit dirties pages all
        # over the primary-key index; once it outgrows the default 2 MB cache
        # and 1,000-page checkpoints, inserts get 3-4x slower as the table
        # grows. A 64 MiB cache and 10,000-page (40 MiB) checkpoints measured
        # about a third faster at 150k rows; the WAL is cut back after each.
        self._writer.execute("PRAGMA cache_size=-65536")
        self._writer.execute("PRAGMA wal_autocheckpoint=10000")
        self._writer.execute("PRAGMA journal_size_limit=67108864")
        self._writer.executescript(_SCHEMA)

    # -- lifecycle -------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------

    def insert_clicks(
        self, rows: Sequence[ClickRow], source: str, received_at: str | None = None
    ) -> InsertResult:
        """Insert ``rows`` in one transaction; rows whose click id exists are skipped.

        ``source`` is ``"buttons"`` or ``"ingest"``; ``received_at`` defaults
        to now (ISO 8601 UTC).
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        if not rows:
            return InsertResult(0, 0)
        per_request = (source, received_at or utc_now_iso())
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(_INSERT, [(*row, *per_request) for row in rows])
            stored = conn.total_changes - before
            # Only when something was ignored: the usual batch pays nothing.
            conflicting = conflicting_ids(conn, rows) if stored < len(rows) else []
        return InsertResult(
            stored=stored, duplicates=len(rows) - stored, conflicting=tuple(conflicting)
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection, in one transaction under the writer lock.

        For tables other modules keep in the same file (the 0.0.x
        conversations API): committed on exit, rolled back on an exception.
        """
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- reading ---------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read-only query on a connection of its own (never waits for the writer)."""
        return self._query(sql, params)

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection in one read transaction: several queries, one view.

        The queries see the same clicks even while the writer commits (WAL),
        so numbers read one after another agree with each other.
        """
        conn = self._read()
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def _read(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._read()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def totals(self) -> tuple[int, int]:
        """(clicks, conversations) stored, counted by SQLite."""
        clicks, conversations = self._query(
            "SELECT count(*), count(DISTINCT conversation_id) FROM clicks"
        )[0]
        return int(clicks), int(conversations)

    def count_clicks(self) -> int:
        (count,) = self._query("SELECT count(*) FROM clicks")[0]
        return int(count)

    def click_ids(self) -> list[str]:
        """Every stored click id, sorted (for tests and soak checks)."""
        return [row[0] for row in self._query("SELECT click_id FROM clicks ORDER BY click_id")]

    def list_conversations(self, limit: int | None = None) -> list[ConversationSummary]:
        """Conversations with at least one click, most recently clicked first."""
        # SQLite fills the bare `timestamp` column from the row that holds
        # max(ts_us), so this is the newest click's timestamp as received.
        sql = (
            "SELECT conversation_id, count(*), max(ts_us) AS newest, timestamp FROM clicks"
            " GROUP BY conversation_id ORDER BY newest DESC, conversation_id"
        )
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            ConversationSummary(conversation_id, int(count), last)
            for conversation_id, count, _, last in self._query(sql, params)
        ]

    def conversation_buttons(
        self, conversation_id: str, per_event_limit: int | None = None
    ) -> list[ButtonGroup] | None:
        """Clicks of a conversation grouped by ``button_event``; ``None`` if unknown.

        Clicks are newest first within a group (ties: the later-received
        first), and groups are ordered by their newest click, newest first,
        so the most recent interaction is at the top. ``per_event_limit``
        keeps only that many newest clicks per group.
        """
        columns = (
            "click_id, conversation_id, button_event, label, value, timestamp, metadata,"
            " trace_id, span_id, source, received_at"
        )
        if per_event_limit is None:
            rows = self._query(
                f"SELECT {columns} FROM clicks WHERE conversation_id = ?"
                " ORDER BY ts_us DESC, rowid DESC",
                (conversation_id,),
            )
        else:
            # Cut in SQL: a conversation with a million clicks must not become
            # a million Python rows to show twenty.
            rows = self._query(
                f"SELECT {columns} FROM (SELECT {columns}, ts_us, rowid AS r,"
                " row_number() OVER (PARTITION BY button_event ORDER BY ts_us DESC, rowid DESC)"
                " AS n FROM clicks WHERE conversation_id = ?)"
                # At least one per event, so a limit of 0 still lists the events.
                " WHERE n <= max(?, 1) ORDER BY ts_us DESC, r DESC",
                (conversation_id, per_event_limit),
            )
        if not rows:
            return None
        groups: dict[str, ButtonGroup] = {}
        for row in rows:
            group = groups.get(row[2])
            if group is None:
                group = groups[row[2]] = ButtonGroup(row[2])
            if per_event_limit is not None and len(group.clicks) >= per_event_limit:
                continue
            group.clicks.append(click_from_row(row))
        return list(groups.values())

    def group_sizes(self, conversation_id: str) -> dict[str, int]:
        """``button_event`` -> number of clicks, for "and N more" notes."""
        rows = self._query(
            "SELECT button_event, count(*) FROM clicks WHERE conversation_id = ?"
            " GROUP BY button_event",
            (conversation_id,),
        )
        return {event: int(count) for event, count in rows}

    def iter_clicks(self) -> Iterator[Click]:
        """Every click, oldest first (exports, debugging)."""
        for row in self._query(
            "SELECT click_id, conversation_id, button_event, label, value, timestamp, metadata,"
            " trace_id, span_id, source, received_at FROM clicks ORDER BY ts_us, rowid"
        ):
            yield click_from_row(row)
