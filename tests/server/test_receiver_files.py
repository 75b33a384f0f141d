"""The receiver's database files: where they are and who may read them.

Issue 12, item 12: ``serve --db rel.sqlite3`` answered every read with 500
(``relative path can't be expressed as a file URI``). Item 15: the database
and its directories were created world-readable, and click labels and
metadata are user data.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from agentsight_otel.server.receiver import running_receiver
from agentsight_otel.server.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_relative_db_path_serves_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session: requests.Session
) -> None:
    monkeypatch.chdir(tmp_path)
    with running_receiver("rel.sqlite3") as receiver:
        # Resolved once: a later change of directory does not move the database.
        monkeypatch.chdir(tmp_path.parent)
        body = {
            "timestamp": "2025-01-02T03:04:05+00:00",
            "button_event": "e",
            "label": "l",
            "value": "v",
            "conversation_id": "conv-rel",
        }
        posted = session.post(
            f"{receiver.url}/api/buttons/", json=body, headers=receiver.headers(), timeout=30
        )
        assert posted.status_code == 201, posted.text
        for path in (
            "/api/conversations/",
            "/api/conversations/conv-rel/buttons/",
            "/api/clicks/count/",
            "/api/clicks/ids/",
            "/",
        ):
            response = session.get(f"{receiver.url}{path}", timeout=30)
            assert response.status_code == 200, (path, response.text)
        assert receiver.store.path == tmp_path / "rel.sqlite3"
    assert (tmp_path / "rel.sqlite3").exists()


def test_serve_with_a_relative_db_answers_reads(tmp_path: Path) -> None:
    # The command line itself, as the issue reports it.
    child = subprocess.Popen(
        [sys.executable, "-m", "agentsight_otel.cli", "serve", "--port", "0", "--db", "r.sqlite3"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()
        assert "http://" in first, first + (child.stderr.read() if child.poll() is not None else "")
        url = first[first.index("http://") :].split()[0].rstrip("/")
        assert requests.get(f"{url}/api/conversations/", timeout=30).status_code == 200
        assert requests.get(f"{url}/", timeout=30).status_code == 200
    finally:
        child.terminate()
        child.communicate(timeout=30)  # also closes the pipes, or filterwarnings=error fails


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_database_files_and_created_directories_are_private(tmp_path: Path) -> None:
    db = tmp_path / "made" / "by" / "us" / "receiver.sqlite3"
    store = Store(db)
    try:
        store.insert_clicks(
            [("id", "c", "e", "l", "v", "2025-01-02T03:04:05+00:00", "{}", None, None, 0)],
            "ingest",
        )
        assert store.count_clicks() == 1  # a reader has opened the -shm too
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        for path in files:
            assert path.exists(), path
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
        for directory in (db.parent, db.parent.parent, db.parent.parent.parent):
            assert _mode(directory) == 0o700, (directory, oct(_mode(directory)))
    finally:
        store.close()
    # A directory that already existed is not ours to change.
    assert _mode(tmp_path) == stat.S_IMODE(os.stat(tmp_path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_files_stay_private_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = Store(tmp_path / "d" / "r.sqlite3")
    finally:
        os.umask(old)
    try:
        assert _mode(tmp_path / "d") == 0o700
        assert _mode(tmp_path / "d" / "r.sqlite3") == 0o600
        assert _mode(tmp_path / "d" / "r.sqlite3-wal") == 0o600
    finally:
        store.close()
