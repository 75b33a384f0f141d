"""The on-disk spool: every click not yet acknowledged, in SQLite (WAL).

Why SQLite: one file, transactional, safe against a ``kill -9`` of the
application (a committed transaction survives a process crash in WAL mode
with ``synchronous=NORMAL``; only an OS crash or power loss can take the
last few commits), and shareable by several processes, which is what a
forked server (gunicorn, uwsgi) needs.

How clicks move: ``put`` stores them; a worker ``lease``s a batch (marking
it as its own until a deadline, so no other process sends it at the same
time); ``ack`` deletes what the receiver accepted; ``release`` hands a batch
back with a not-before time after a failure. Leases of a process that died
on this host are released when the next process opens the spool, so a
crash delays nothing. A row that cannot be read back (a torn write, an
incompatible version) is moved to the ``quarantine`` table in the lease's
own transaction and reported once (``take_quarantined``), so it never holds
up the clicks around it. Redelivery is idempotent: the click id goes with the
click, and the receiver stores each click id once.

Bounded: at most ``max_clicks``. When full, the drop policy decides
(``newest``: refuse what arrives, the OpenTelemetry convention; ``oldest``:
delete the oldest unleased clicks to make room). Both are counted and logged
by the caller.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from agentsight_otel.config import ConfigurationError, ExporterSettings
from agentsight_otel.private_files import create_private_file, make_private_dirs
from agentsight_otel.wire.records import ClickRecord, record_to_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clicks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    click_id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL,
    owner TEXT,
    not_before REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS clicks_due ON clicks (not_before, seq);
CREATE TABLE IF NOT EXISTS spool_size (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
INSERT OR IGNORE INTO spool_size (id, n) VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS clicks_in AFTER INSERT ON clicks
    BEGIN UPDATE spool_size SET n = n + 1 WHERE id = 0; END;
CREATE TABLE IF NOT EXISTS quarantine (
    seq INTEGER PRIMARY KEY,
    click_id BLOB,
    record BLOB,
    reason TEXT NOT NULL,
    quarantined_at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS clicks_out AFTER DELETE ON clicks
    BEGIN UPDATE spool_size SET n = n - 1 WHERE id = 0; END;
"""

Leased = list[tuple[int, ClickRecord]]
#: A record set aside because it cannot be read back: (click id, why).
Quarantined = list[tuple[str, str]]

_TEXT_FIELDS = (*ClickRecord._fields[:5], "trace_id", "span_id")


def decode_record(click_id: str, stored: bytes) -> ClickRecord:
    """A stored record read back, or ValueError saying why it cannot be.

    A row can be unreadable after a torn write, a disk error, or by coming
    from an incompatible version: anything that does not give back the
    record ``put`` wrote is refused here, before it can reach a request.
    """
    try:
        fields = json.loads(stored)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(fields, list) or not 10 <= len(fields) <= len(ClickRecord._fields):
        raise ValueError("not a click record array of 10 or 11 fields")
    record = ClickRecord(*fields)
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(record, name), str):
            raise ValueError(f"{name} is not a string")
    if record.click_id != click_id:
        raise ValueError("the record's click id is not the row's")
    if not isinstance(record.metadata, dict) or not isinstance(record.resource, dict):
        raise ValueError("metadata or resource is not an object")
    if type(record.timestamp_ns) is not int:
        raise ValueError("timestamp_ns is not an integer")
    if record.metadata_text is not None and not isinstance(record.metadata_text, str):
        raise ValueError("metadata_text is not a string")
    return record


#: SQLite's primary result codes for a write the file system refused.
_SQLITE_IOERR = 10
_SQLITE_FULL = 13


def out_of_space(exc: Exception) -> bool:
    """Whether a write failed for want of space (or on an I/O error), not a bad path."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # Python before 3.11: only the message
        return "disk" in str(exc)
    return (code & 0xFF) in (_SQLITE_IOERR, _SQLITE_FULL)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """A SQLite spool file. One instance per process; reopens itself after fork."""

    def __init__(self, path: str, max_clicks: int, drop_policy: str = "newest") -> None:
        self.path = path
        self.max_clicks = max_clicks
        self.drop_policy = drop_policy
        self._lock = threading.Lock()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._owner = ""
        self._quarantined: Quarantined = []
        self._ack_later: list[int] = []
        try:
            self._connect()
        except (sqlite3.OperationalError, OSError) as exc:
            if not out_of_space(exc):
                raise  # a path that cannot work is the caller's configuration error
            # A full disk now is not a bad path: opened on first use, once it
            # takes writes again; until then every operation raises, and the
            # exporter keeps clicks in memory and sends them directly.

    # -- connection -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # After fork the parent's connection must not be used (SQLite says
        # so); it is dropped without closing, which would touch its locks.
        self._pid = os.getpid()
        self._owner = f"{socket.gethostname()}:{self._pid}:{os.urandom(4).hex()}"
        # Clicks carry the application's users' data: the directories made
        # here are 0700 and the database file 0600, which SQLite gives its
        # -wal, -shm and -journal files too. What exists is left as it is.
        path = Path(os.path.abspath(self.path))
        make_private_dirs(path.parent)
        create_private_file(path)
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._release_dead_owners(conn)
        return conn

    def _release_dead_owners(self, conn: sqlite3.Connection) -> None:
        host = socket.gethostname()
        owners = [
            row[0]
            for row in conn.execute("SELECT DISTINCT owner FROM clicks WHERE owner IS NOT NULL")
        ]
        for owner in owners:
            parts = owner.split(":")
            mine = len(parts) >= 2 and parts[0] == host and parts[1].isdigit()
            if mine and not _process_alive(int(parts[1])):
                conn.execute(
                    "UPDATE clicks SET owner = NULL, not_before = 0 WHERE owner = ?", (owner,)
                )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on success, rolled back on any error.

        When a write fails for want of space (``SQLITE_FULL``, or an I/O
        error such as ``EFBIG``), SQLite may already have rolled the
        transaction back itself; a ROLLBACK then fails with "cannot rollback
        - no transaction is active" and, raised from the handler, would hide
        the real error. So ROLLBACK is issued only while a transaction is
        open, and the original exception is the one that propagates.
        """
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    # -- operations -------------------------------------------------------

    def size(self) -> int:
        with self._lock:
            row = self._connect().execute("SELECT n FROM spool_size WHERE id = 0").fetchone()
            return int(row[0])

    def put(self, records: Sequence[ClickRecord]) -> int:
        """Store records; returns how many the drop policy refused or evicted."""
        if not records:
            return 0
        rows = [(r.click_id, record_to_json(r)) for r in records]
        with self._write() as conn:
            size = conn.execute("SELECT n FROM spool_size WHERE id = 0").fetchone()[0]
            room = self.max_clicks - size
            dropped = 0
            if len(rows) > room:
                if self.drop_policy == "oldest":
                    excess = len(rows) - max(room, 0)
                    evicted = conn.execute(
                        "DELETE FROM clicks WHERE seq IN (SELECT seq FROM clicks "
                        "WHERE owner IS NULL ORDER BY seq LIMIT ?)",
                        (excess,),
                    ).rowcount
                    dropped = evicted
                    room += evicted
                if len(rows) > room:
                    dropped += len(rows) - max(room, 0)
                    rows = rows[: max(room, 0)]
            conn.executemany("INSERT OR IGNORE INTO clicks (click_id, record) VALUES (?, ?)", rows)
        return dropped

    def lease(self, limit: int, hold_seconds: float, *, now_or_later: bool = False) -> Leased:
        """Claim up to ``limit`` due clicks, oldest first, for ``hold_seconds``.

        ``now_or_later`` also takes clicks that were released with a retry
        time still ahead (a flush asks for everything now), but never clicks
        another process holds.
        """
        now = time.time()
        leased: Leased = []
        set_aside: Quarantined = []
        with self._write() as conn:
            while len(leased) < limit:
                # Read as bytes: text that is not UTF-8 must fail one row,
                # not the query that reads the whole batch.
                rows = conn.execute(
                    "SELECT seq, CAST(click_id AS BLOB), CAST(record AS BLOB) FROM clicks "
                    "WHERE not_before <= ? OR (? AND owner IS NULL) ORDER BY seq LIMIT ?",
                    (now, now_or_later, limit - len(leased)),
                ).fetchall()
                good: Leased = []
                bad = []
                for seq, raw_id, stored in rows:
                    click_id = bytes(raw_id or b"").decode("utf-8", "replace")
                    try:
                        good.append((seq, decode_record(click_id, bytes(stored or b""))))
                    except ValueError as exc:
                        bad.append((seq, raw_id, stored, str(exc), now))
                        set_aside.append((click_id, str(exc)))
                if good:
                    conn.executemany(
                        "UPDATE clicks SET owner = ?, not_before = ?, attempts = attempts + 1 "
                        "WHERE seq = ?",
                        [(self._owner, now + hold_seconds, seq) for seq, _ in good],
                    )
                    leased.extend(good)
                if not bad:
                    break
                # In the lease's own transaction: a row is either leased, or
                # moved to quarantine, never both, never neither; and the
                # rows after it are read in its place.
                conn.executemany(
                    "INSERT OR REPLACE INTO quarantine "
                    "(seq, click_id, record, reason, quarantined_at) VALUES (?, ?, ?, ?, ?)",
                    bad,
                )
                conn.executemany("DELETE FROM clicks WHERE seq = ?", [(row[0],) for row in bad])
        if set_aside:  # reported only once the move is committed
            with self._lock:
                self._quarantined.extend(set_aside)
        return leased

    def take_quarantined(self) -> Quarantined:
        """Records this process set aside since the last call: (click id, why)."""
        with self._lock:
            taken, self._quarantined = self._quarantined, []
        return taken

    def ack(self, seqs: Sequence[int]) -> None:
        """Forget clicks the receiver accepted (or refused for good).

        When the write fails (disk full) the clicks stay leased; they are
        kept here and forgotten with the next ``ack`` (``ack([])`` retries
        them alone), rather than sent again when their lease runs out.
        """
        pending = self._ack_later + list(seqs)
        if not pending:
            return
        try:
            with self._write() as conn:
                conn.executemany("DELETE FROM clicks WHERE seq = ?", [(s,) for s in pending])
        except BaseException:
            self._ack_later = pending
            raise
        self._ack_later = []

    def release(self, seqs: Sequence[int], retry_in: float) -> None:
        """Give clicks back after a failed delivery, due again in ``retry_in`` s."""
        if not seqs:
            return
        due = time.time() + retry_in
        with self._write() as conn:
            conn.executemany(
                "UPDATE clicks SET owner = NULL, not_before = ? WHERE seq = ?",
                [(due, s) for s in seqs],
            )

    def release_mine(self) -> None:
        """Hand back every click this process holds, due now (a clean stop).

        Without this a restarted process would wait out the leases of the
        one it replaces, since that process is still alive while it stops.
        """
        with self._lock:
            conn = self._connect()
            conn.execute(
                "UPDATE clicks SET owner = NULL, not_before = 0 WHERE owner = ?", (self._owner,)
            )

    def next_due_in(self) -> float | None:
        """Seconds until the next click is due (0 if one is due now), None if empty."""
        with self._lock:
            row = self._connect().execute("SELECT min(not_before) FROM clicks").fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - time.time())


def open_spool(settings: ExporterSettings) -> Spool:
    """The spool ``settings`` name; an unusable path is a configuration error."""
    try:
        return Spool(str(settings.spool_path), settings.spool_max_clicks, settings.drop_policy)
    except Exception as exc:
        raise ConfigurationError(f"cannot open spool {settings.spool_path!r}: {exc}") from exc
