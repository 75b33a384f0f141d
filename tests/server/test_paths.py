"""The servers' default files: one data directory, one setting, no cross-imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentsight_otel.server import paths


def test_receiver_database_and_bridge_spool_share_the_data_directory(tmp_path: Path) -> None:
    env = {paths.DATA_DIR_ENV: str(tmp_path / "data")}
    assert paths.default_db_path(env) == tmp_path / "data" / "receiver.sqlite3"
    assert paths.default_spool_path(env) == tmp_path / "data" / "bridge-spool.sqlite3"


def test_without_the_setting_the_data_directory_is_under_the_home() -> None:
    expected = Path("~/.local/share/agentsight-otel").expanduser()
    assert paths.data_dir({}) == expected
    assert paths.data_dir({paths.DATA_DIR_ENV: ""}) == expected


def test_the_bridge_does_not_import_the_receiver_store() -> None:
    """Naming the spool must not pull in the receiver (a back-edge)."""
    code = (
        "import sys, agentsight_otel.server.bridge\n"
        "print('agentsight_otel.server.store' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
