"""Where the servers keep their files by default: one data directory for both.

``${AGENTSIGHT_OTEL_DATA_DIR:-~/.local/share/agentsight-otel}`` holds the
receiver's database and the bridge's spool, so one setting moves both. Kept
apart from the store so the bridge can name its spool without importing
the receiver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

#: Environment variable naming the directory the servers keep their data in.
DATA_DIR_ENV: Final = "AGENTSIGHT_OTEL_DATA_DIR"
#: File name of the receiver's database inside that directory.
DB_FILENAME: Final = "receiver.sqlite3"
#: File name of the bridge's spool inside that directory.
BRIDGE_SPOOL_FILENAME: Final = "bridge-spool.sqlite3"


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``${AGENTSIGHT_OTEL_DATA_DIR:-~/.local/share/agentsight-otel}``, expanded."""
    env = os.environ if environ is None else environ
    base = env.get(DATA_DIR_ENV) or os.path.join("~", ".local", "share", "agentsight-otel")
    return Path(base).expanduser()


def default_db_path(environ: Mapping[str, str] | None = None) -> Path:
    """The receiver's database: ``<data dir>/receiver.sqlite3``."""
    return data_dir(environ) / DB_FILENAME


def default_spool_path(environ: Mapping[str, str] | None = None) -> Path:
    """The bridge's spool: ``<data dir>/bridge-spool.sqlite3``."""
    return data_dir(environ) / BRIDGE_SPOOL_FILENAME
