"""Files and directories that only their owner may read.

The receiver's database holds click labels, values and metadata: user data.
Created with the process umask (usually 022) they were world-readable. What
the library creates is created owner-only instead: directories 0700, the
database 0600. SQLite gives a database's ``-wal`` and ``-shm`` files the
database file's own permission bits, so creating the database file first is
enough for those. Existing files and directories are left as they are: their
permissions are their owner's choice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700.

    ``Path.mkdir(parents=True, mode=...)`` applies the mode to the last
    directory only, and the umask to all of them; each one we create gets an
    explicit ``chmod`` instead.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: theirs
            continue
        os.chmod(path, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; never truncate it."""
    try:
        # The umask can only narrow 0600, so no chmod is needed after this.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
