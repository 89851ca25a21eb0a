"""Whether a database driver's exception means the store cannot serve now — the disk is full,
an I/O error, the database locked or the connection lost — rather than a fault in our code
(a bad statement). The API answers the first 503 and the second 500, both logged.

SQLite says so by its result code (``sqlite_errorcode``, the primary code in its low byte:
"Result and Error Codes"); PostgreSQL by the class of its SQLSTATE (Appendix A: 08 connection
exception, 53 insufficient resources, 57P operator intervention, 58 system error), which
psycopg and asyncpg both carry as ``sqlstate``; the operating system by ``errno``.
"""

from __future__ import annotations

import errno
import sqlite3

_SQLITE = {
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_IOERR: "a disk I/O error",
    sqlite3.SQLITE_BUSY: "the database is busy",
    sqlite3.SQLITE_LOCKED: "the database is locked",
    sqlite3.SQLITE_READONLY: "the database is read-only",
    sqlite3.SQLITE_CANTOPEN: "the database cannot be opened",
    sqlite3.SQLITE_NOMEM: "out of memory",
}
_SQLSTATE = {
    "08": "the database connection failed",
    "53": "the database is out of resources (disk, memory or connections)",
    "57": "the database is shutting down or not accepting connections",
    "58": "the database had a system error",
}
_ERRNO = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EIO: "a disk I/O error",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "a file is too large",
}


def store_failure(exc: BaseException) -> str | None:
    """What made the store unavailable, in words, or None when ``exc`` (with the exceptions it
    wraps: SQLAlchemy's ``orig``, ``__cause__``, ``__context__``) is not such a failure."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        one = todo.pop()
        if one is None or id(one) in seen:
            continue
        seen.add(id(one))
        if isinstance(one, sqlite3.Error):
            code = getattr(one, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _SQLITE:
                return f"{_SQLITE[code & 0xFF]} ({one})"
        sqlstate = getattr(one, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _SQLSTATE:
            return f"{_SQLSTATE[sqlstate[:2]]} ({sqlstate}: {one})"
        if isinstance(one, OSError) and one.errno in _ERRNO:
            return f"{_ERRNO[one.errno]} ({one})"
        if isinstance(one, ConnectionError):
            return f"the database connection failed ({one})"
        orig = getattr(one, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, one.__cause__, one.__context__]
    return None
