"""spool.py: the SQLite spool, on a real file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentsight_otel.delivery.spool import Spool
from agentsight_otel.wire.records import ClickRecord


def record(n: int) -> ClickRecord:
    return ClickRecord(
        f"{n:032x}",
        "evt",
        f"label {n}",
        "v",
        "conv",
        {"n": n, "x": [None, {}]},
        1_700_000_000_000_000_000 + n,
        "a" * 32,
        "b" * 16,
        {"service.name": "svc"},
    )


def test_put_lease_ack_round_trip(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.db"), max_clicks=100)
    assert spool.put([record(i) for i in range(10)]) == 0
    assert spool.size() == 10
    leased = spool.lease(4, hold_seconds=60)
    assert [r for _, r in leased] == [record(i) for i in range(4)]  # oldest first, intact
    assert len(spool.lease(100, hold_seconds=60)) == 6  # leased ones are not handed out twice
    spool.ack([seq for seq, _ in leased])
    assert spool.size() == 6
    spool.close()


def test_duplicate_click_ids_are_stored_once(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.db"), max_clicks=100)
    spool.put([record(1), record(1), record(2)])
    spool.put([record(2)])
    assert spool.size() == 2


def test_release_makes_clicks_due_again_later(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.db"), max_clicks=100)
    spool.put([record(1)])
    leased = spool.lease(10, hold_seconds=60)
    spool.release([seq for seq, _ in leased], retry_in=0.0)
    assert len(spool.lease(10, hold_seconds=60)) == 1
    spool.release([seq for seq, _ in leased], retry_in=30.0)
    assert spool.lease(10, hold_seconds=60) == []
    due = spool.next_due_in()
    assert due is not None and 25 < due <= 30


def test_drop_newest_refuses_what_does_not_fit(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.db"), max_clicks=5, drop_policy="newest")
    assert spool.put([record(i) for i in range(3)]) == 0
    assert spool.put([record(i) for i in range(3, 8)]) == 3
    kept = [r.click_id for _, r in spool.lease(10, 60)]
    assert kept == [record(i).click_id for i in range(5)]


def test_drop_oldest_evicts_unleased_oldest(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.db"), max_clicks=5, drop_policy="oldest")
    spool.put([record(i) for i in range(5)])
    spool.lease(1, 60)  # record 0 is in flight: never evicted under a sender
    assert spool.put([record(i) for i in range(5, 7)]) == 2
    assert spool.size() == 5
    remaining = sorted(r.click_id for _, r in spool.lease(10, 60))
    assert remaining == sorted(record(i).click_id for i in (3, 4, 5, 6))


def test_two_processes_never_lease_the_same_click(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first, second = Spool(path, 1000), Spool(path, 1000)
    first.put([record(i) for i in range(100)])
    a = {r.click_id for _, r in first.lease(60, 60)}
    b = {r.click_id for _, r in second.lease(60, 60)}
    assert len(a) == 60 and len(b) == 40 and not a & b


def test_leases_of_a_dead_process_are_released_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Spool(path, 100).put([record(i) for i in range(3)])
    # Another process leases everything for an hour, then dies without a word.
    code = (
        "import sys; from agentsight_otel.delivery.spool import Spool; "
        f"s = Spool({path!r}, 100); assert len(s.lease(10, 3600)) == 3"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert len(Spool(path, 100).lease(10, 60)) == 3


def test_wal_mode_and_size_counter_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Spool(path, 100).put([record(i) for i in range(7)])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert Spool(path, 100).size() == 7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_spool_reopens_in_a_forked_child(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "s.db"), 100)
    spool.put([record(1)])
    pid = os.fork()
    if pid == 0:
        try:
            spool.put([record(2)])
            os._exit(0 if spool.size() == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert spool.size() == 2


def _corrupt(path: str, click_ids: dict[str, bytes]) -> None:
    """Overwrite stored records as a torn write or an older format would leave them."""
    with sqlite3.connect(path) as conn:
        for click_id, text in click_ids.items():
            conn.execute("UPDATE clicks SET record = ? WHERE click_id = ?", (text, click_id))


def test_unreadable_records_are_quarantined_and_never_hold_up_the_batch(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    spool = Spool(path, max_clicks=100)
    spool.put([record(i) for i in range(6)])
    good = record(0)
    _corrupt(
        path,
        {
            record(1).click_id: b'["%s","evt","lab' % record(1).click_id.encode(),  # torn
            record(2).click_id: b'["%s","evt"]' % record(2).click_id.encode(),  # older format
            record(3).click_id: b"\xff\xfe not utf-8",
            record(4).click_id: b'{"a": 1}',
        },
    )
    leased = spool.lease(3, hold_seconds=60)
    # The readable ones come out, oldest first, however many bad ones lie between.
    assert [r for _, r in leased] == [good, record(5)]
    bad = spool.take_quarantined()
    assert sorted(click_id for click_id, _ in bad) == sorted(
        record(i).click_id for i in (1, 2, 3, 4)
    )
    assert all(reason for _, reason in bad)
    assert spool.take_quarantined() == []  # reported once
    assert spool.size() == 2
    spool.ack([seq for seq, _ in leased])
    assert spool.size() == 0 and spool.lease(10, 60) == []
    # Set aside, not deleted: the rows are kept for inspection.
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 4


def test_spool_files_and_the_directories_it_creates_are_private(tmp_path: Path) -> None:
    import stat

    previous = os.umask(0o022)  # the usual umask: 0644 files, 0755 directories
    try:
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o755)
        os.chmod(shared, 0o755)
        path = shared / "a" / "b" / "s.db"
        spool = Spool(str(path), 100)
        spool.put([record(1)])
        leased = spool.lease(1, 60)  # the -shm and -wal files exist while it is open
        siblings = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        for file in siblings:
            assert file.exists(), file
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        for directory in (shared / "a", shared / "a" / "b"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        # A directory the user made is theirs: left as it was.
        assert stat.S_IMODE(shared.stat().st_mode) == 0o755
        spool.ack([seq for seq, _ in leased])
        spool.close()
        # A rollback journal (journal_mode=DELETE) follows the database's mode too.
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO clicks (click_id, record) VALUES ('x', '[]')")
            journal = Path(f"{path}-journal")
            assert journal.exists()
            assert stat.S_IMODE(journal.stat().st_mode) == 0o600
            conn.execute("COMMIT")
    finally:
        os.umask(previous)


def test_an_ack_the_disk_refused_is_written_with_the_next_one(tmp_path: Path) -> None:
    """Delivered clicks whose ack cannot be written (no file may grow) are
    forgotten by the next ack, not sent again when their lease runs out."""
    path = str(tmp_path / "s.db")
    code = f"""
import resource, signal, sqlite3, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_spool import record
from agentsight_otel.delivery.spool import Spool
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
spool = Spool({path!r}, 100)
spool.put([record(i) for i in range(3)])
leased = spool.lease(2, hold_seconds=3600)
unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (0, unlimited))
try:
    spool.ack([seq for seq, _ in leased])
    sys.exit("the ack was written although no file may be")
except sqlite3.Error:
    pass
resource.setrlimit(resource.RLIMIT_FSIZE, (unlimited, unlimited))
spool.ack([])
assert spool.size() == 1, spool.size()
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
