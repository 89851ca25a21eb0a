"""One writer thread per SQLite file (the shape of Datasette's ``database.py``).

Callers on the event loop queue statements without waiting. The thread takes everything queued,
runs it in one transaction and commits: a burst of a thousand writes costs one commit (group
commit). ``committed()`` gives an awaitable that completes once every statement queued before it
is durable.

A batch that fails is rolled back whole and the writer goes on with the next. Every waiter whose
statements were in it is told (``StoreUnavailable``), even when its marker only arrives in a
later batch that commits: a waiter is answered for everything queued before it. A writer made
with ``keep_failed`` (the broker's state: nobody waits for most of its writes, and a session,
a retained message or a QoS 2 id lost to a full disk would be lost for good) keeps a failed
batch's statements instead and writes them again, first, with the next batch or
``RETRY_AFTER`` later if none comes: ``error`` clears within about a second of the disk having
room, with no traffic.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

from hongshan.failure_log import FailureLog
from hongshan.store.markers import Marker, Markers, OwedFailure, written_after_last_marker

log = logging.getLogger("hongshan.store")

Statement = tuple[str, Sequence[Any]]


class _Keyed:
    """Stands in the queue for the latest statement given under ``key``."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key


Rows = Sequence[Sequence[Any]]
_CHUNK_ROWS = 1024  # rows per multi-row INSERT at most (SQLite allows 32,766 parameters)


class RowInsert(NamedTuple):
    """An INSERT of many rows: ``head`` up to and with ``VALUES``, ``width`` values a row.

    Given as the SQL of an ``executemany`` part, its rows are written as few statements of many
    rows each (``VALUES (…), (…), …``), and the rows of every such part of a batch are written
    together, just before the next statement of another kind. ``executemany`` would release
    and retake the GIL for each row: with the event loop busy in the other thread, each retake
    waits for the loop to give it up (up to the switch interval), and the writer crawls."""

    head: str
    width: int


class _Many:
    """Statements each run for many rows (``executemany``), always in the same transaction:
    a loop turn's history rows, say, with the catalogue rows they refer to. ``outcome`` is
    called on the loop with whether that transaction committed (this item's own fate, not
    the conservative answer ``committed()`` gives)."""

    __slots__ = ("outcome", "parts")

    def __init__(
        self, parts: Sequence[tuple[str | RowInsert, Rows]], outcome: Callable[[bool], None] | None
    ) -> None:
        self.parts = parts
        self.outcome = outcome


_STOP = object()
_BATCH_LIMIT = 20_000
RETRY_AFTER = 1.0  # seconds before a failed batch is written again (``keep_failed``)


class SQLiteWriter:
    def __init__(
        self, path: str | Path, *, loop: asyncio.AbstractEventLoop, keep_failed: bool = False
    ) -> None:
        self.path = str(path)
        self._loop = loop
        self._keep_failed = keep_failed  # (plain statements only: no ``executemany`` then)
        self._queue: queue.SimpleQueue[Statement | _Many | Marker | _Keyed | object]
        self._queue = queue.SimpleQueue()
        self._markers = Markers(loop)
        self._keyed: dict[object, Statement] = {}  # latest statement per key, not yet run
        self._keyed_lock = threading.Lock()
        self.error: str | None = None  # why the last batch failed; None once one commits
        self.commits = 0  # transactions committed, for tests and benchmarks
        self.failures = FailureLog(log, f"SQLite writes to {self.path}")
        self.conn = connect(self.path)
        self._thread = threading.Thread(target=self._run, name=f"sqlite-writer:{path}", daemon=True)
        self._thread.start()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._queue.put((sql, params))
        self._markers.dirty = True

    def executemany(
        self, *parts: tuple[str | RowInsert, Rows], outcome: Callable[[bool], None] | None = None
    ) -> None:
        """Queue statements, each run for every one of its rows, to be committed together or
        not at all (the caller no longer changes the rows); ``outcome(committed)`` is called
        on the loop once that is known."""
        self._queue.put(_Many(parts, outcome))
        self._markers.dirty = True

    def execute_latest(self, key: object, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue a statement that supersedes any not yet run under the same ``key`` (a retained
        message replaced a thousand times a second is written once per batch, and the queue
        holds one entry per key, however fast a client publishes)."""
        with self._keyed_lock:
            queued = key in self._keyed
            self._keyed[key] = (sql, params)
        if not queued:
            self._queue.put(_Keyed(key))
        self._markers.dirty = True

    def committed(self) -> Awaitable[None]:
        return self._markers.committed(self._queue.put)

    def _run(self) -> None:
        conn = self.conn
        stopping = False
        owed = OwedFailure()
        kept: list[object] = []  # a failed batch's statements, written again first
        while not stopping:
            try:
                batch = [self._queue.get(timeout=RETRY_AFTER if kept else None)]
            except queue.Empty:
                batch = []
            while len(batch) < _BATCH_LIMIT:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            markers = [item for item in batch if isinstance(item, Marker)]
            stopping = any(item is _STOP for item in batch)
            if kept:
                batch = kept + batch
                kept = []
            error: str | None = None
            try:
                if len(markers) + stopping < len(batch):  # (markers alone write nothing)
                    if self._keep_failed:  # (the statement a key stands for, to keep)
                        batch = [self._resolved(item) for item in batch]
                    conn.execute("BEGIN")
                    write_parts(conn, self._parts(batch))
                    conn.execute("COMMIT")
                    self.commits += 1
                    self.error = None
                    self.failures.succeeded()
            except sqlite3.Error as exc:
                error = self.error = f"SQLite write to {self.path} failed: {exc}"
                if self._keep_failed and not stopping:
                    kept = [i for i in batch if i is not _STOP and not isinstance(i, Marker)]
                    told = f"a batch of {len(kept)} statements is kept to be written again"
                else:
                    told = f"a batch of {len(batch)} items was rolled back"
                self.failures.failed(f"{told}: {exc}")
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._tell(batch, committed=False)
            else:
                self._tell(batch, committed=True)
            after = written_after_last_marker(
                isinstance(item, Marker) for item in batch if item is not _STOP
            )
            answers = owed.answers(len(markers), error, written_after=after)
            if markers:
                self._loop.call_soon_threadsafe(self._markers.answer, markers, answers)
        conn.close()

    def _resolved(self, item: object) -> object:
        """A keyed entry as the statement it stands for now (what is kept is a statement)."""
        if isinstance(item, _Keyed):
            with self._keyed_lock:
                return self._keyed.pop(item.key)
        return item

    def _parts(self, batch: list[object]) -> Iterator[tuple[str | RowInsert, Rows]]:
        for item in batch:
            if isinstance(item, _Many):
                yield from item.parts
            elif isinstance(item, _Keyed):
                with self._keyed_lock:
                    statement = self._keyed.pop(item.key)
                yield statement[0], [statement[1]]
            elif item is not _STOP and not isinstance(item, Marker):
                statement = cast(Statement, item)
                yield statement[0], [statement[1]]

    def _tell(self, batch: list[object], *, committed: bool) -> None:
        for item in batch:
            if isinstance(item, _Many) and item.outcome is not None:
                self._loop.call_soon_threadsafe(item.outcome, committed)

    async def close(self) -> None:
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)


def write_parts(conn: sqlite3.Connection, parts: Iterable[tuple[str | RowInsert, Rows]]) -> None:
    """Statements of one transaction, in order, each run for every one of its rows; the rows
    of a ``RowInsert`` are gathered with those of the same insert until a statement of another
    kind comes, and written many to a statement."""
    inserts: dict[RowInsert, list[Sequence[Any]]] = {}
    for sql, rows in parts:
        if isinstance(sql, RowInsert):
            inserts.setdefault(sql, []).extend(rows)
            continue
        _write_rows(conn, inserts)
        if len(rows) == 1:
            conn.execute(sql, rows[0])
        else:
            conn.executemany(sql, rows)
    _write_rows(conn, inserts)


def _write_rows(conn: sqlite3.Connection, inserts: dict[RowInsert, list[Sequence[Any]]]) -> None:
    """The gathered rows of multi-row INSERTs, in statements of 1,024 rows or fewer, a power of
    two of them each: the few statement texts that come up are compiled once and cached."""
    for insert, rows in inserts.items():
        at, left = 0, len(rows)
        while left:
            size = min(_CHUNK_ROWS, 1 << (left.bit_length() - 1))
            chunk = rows[at : at + size]
            conn.execute(_statement(insert, size), list(itertools.chain.from_iterable(chunk)))
            at += size
            left -= size
    inserts.clear()


@functools.lru_cache(maxsize=256)
def _statement(insert: RowInsert, rows: int) -> str:
    one = "(" + ",".join("?" * insert.width) + ")"
    return f"{insert.head} {','.join([one] * rows)}"


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed transaction survives power loss, not only a killed process.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn
