"""Files only this user may read (the admin token, the key that seals secrets, the databases),
and the data directory that holds them (``private_data_dir``).

A private file's content is written to a temporary file (mode 0600) beside the target and linked
into place: two processes starting at once agree on one content, and a crash mid-write never
leaves an empty or partial file behind to be read as a valid (empty) secret.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

# SQLite's files beside a database: it creates them with the database file's own mode
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def create_private_file(path: Path, content: str) -> str:
    """Create ``path`` holding ``content`` unless it exists; returns what the file holds."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp makes it 0600
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text()
        return content
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def private_data_dir(path: Path, databases: Iterable[str], files: Iterable[str]) -> list[str]:
    """The data directory, this user's alone: created 0700, and the ``databases`` in it created
    empty with mode 0600 before SQLite opens them, so that SQLite's -wal, -shm and -journal
    files, which take the database's mode, are 0600 too. A directory, database (with its
    sidecars) or one of ``files`` that is already there with looser modes (made by an earlier
    version, or under a looser umask) is tightened; what was is returned, to be said."""
    tightened: list[str] = []
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _tighten(path, 0o700):
        tightened.append(f"{path} (directory)")
    names = [*files]
    for database in databases:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path / database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        names += [database, *(database + sidecar for sidecar in SQLITE_SIDECARS)]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            if _tighten(path / name, 0o600):
                tightened.append(name)
    return tightened


def _tighten(path: Path, mode: int) -> bool:
    """Take away what ``mode`` does not allow (group and others' bits); whether any was."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode == 0:
        return False
    os.chmod(path, current & mode)
    return True
