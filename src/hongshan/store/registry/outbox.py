"""An outbox: rows the registry writes in the background, kept until they are written.

Latest values, shadows and desired values are written after the fact, nobody waiting: a write
that fails because of the database (a full disk, the server gone) must neither lose them nor
leave ``Database.problem`` set until some other change comes (in a quiet hour, health would say
503 although the disk has room again). So an outbox holds its rows by key — a newer row for a
key replaces one not yet written — hands them to the registry thread in one transaction, and
after such a failure takes them back (newer ones win) and tries again ``RETRY_AFTER`` later,
whether or not more come, as ``PresenceWriter`` does. Any other failure (a fault of ours) is
said with its traceback and its rows dropped: tried again, it would fail for ever.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from hongshan.store.registry.database import RETRY_AFTER, Database

K = TypeVar("K", bound=Hashable)
Row = dict[str, Any]


class Outbox(Generic[K]):
    """Rows waiting for one table. It never writes on the loop, and never drops a row for a
    failure of the database; ``current(key, row)`` (on the thread, at the write) says whether
    the row still stands (its device was not deleted meanwhile)."""

    def __init__(
        self,
        db: Database,
        write: Callable[[sa.Connection, list[Row]], None],
        current: Callable[[K, Row], bool],
    ) -> None:
        self._db = db
        self._write = write
        self._current = current
        self._rows: dict[K, Row] = {}
        self._lock = threading.Lock()  # put on the loop, taken on the thread
        self._queued = False  # a flush is on its way to the thread and has not taken the rows
        self._timer: asyncio.TimerHandle | None = None
        db.outboxes.append(self)

    def put(self, key: K, row: Row) -> None:
        with self._lock:
            self._rows[key] = row
            if self._queued:
                return
            self._queued = True
        self._db.in_background(self.flush, failed=self._retry)

    def flush(self) -> None:
        """On the registry thread: every row waiting, in one transaction."""
        with self._lock:
            taken, self._rows = self._rows, {}
            self._queued = False
        rows = [row for key, row in taken.items() if self._current(key, row)]
        if not rows:
            return
        try:
            with self._db.engine.begin() as db:
                self._write(db, rows)
        except (sa.exc.OperationalError, OSError):
            # the database's (a full disk, a connection lost): kept; a newer row wins
            with self._lock:
                self._rows = {**taken, **self._rows}
            raise

    def _retry(self) -> None:
        """A flush failed: its rows are written again soon, whether or not more come (and
        health learns when the registry can write again)."""
        if self._timer is None and self._rows:
            self._timer = asyncio.get_running_loop().call_later(RETRY_AFTER, self._again)

    def _again(self) -> None:
        self._timer = None
        with self._lock:
            if self._queued or not self._rows:
                return
            self._queued = True
        self._db.in_background(self.flush, failed=self._retry)

    def stop(self) -> None:
        """No retry is left to run (the database closes; ``flush`` writes what waits)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
