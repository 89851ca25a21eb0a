"""One writer per PostgreSQL history: an asyncio task with a connection of its own (asyncpg).

The same contract as ``store.sqlite.writer.SQLiteWriter``: callers on the event loop queue
statements without waiting; the task takes everything queued, runs it in one transaction and
commits (group commit); ``committed()`` is done once everything queued before it is durable; an
``executemany`` item is told its own outcome.

Parts of an item are ``(sql, rows)``, run once per row (``[()]``: once), or ``(Copy, rows)``:
the rows of every ``Copy`` part of a batch are gathered and written by one binary ``COPY``, just
before the next statement of another kind. A row that collides with a kept one on the table's
key makes the ``COPY`` fail; the batch is then run again with its copies merged through a
temporary table (``INSERT … ON CONFLICT``), the later row replacing the earlier.

Tables partitioned by time (``partitions``) get the partitions a batch needs before it runs.

When PostgreSQL cannot be reached, a batch fails at once (its waiters are told, so a device's
PUBACK is withheld and it sends again) and a new connection is tried at most every
``RETRY_EVERY`` seconds; ``error`` says why until a batch commits. A connection lost while its
COMMIT was on the way leaves the batch's fate unknown: its markers fail, but the items' own
outcomes (what a resend of the same message waits for) are held until a new connection asks the
server what became of the transaction (``txid_status``), and only then told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import asyncpg

from hongshan.errors import StoreUnavailable
from hongshan.failure_log import FailureLog
from hongshan.store.markers import (
    Marker,
    Markers,
    OwedFailure,
    tell,
    written_after_last_marker,
)

log = logging.getLogger("hongshan.store")

Rows = Sequence[Sequence[Any]]
RETRY_EVERY = 1.0  # seconds between attempts to connect while PostgreSQL cannot be reached
COMMAND_TIMEOUT = 60.0  # seconds a statement may take before its connection is given up
CONNECT_TIMEOUT = 5.0
UNSURE_WAIT = 10.0  # seconds a new connection waits for an unsure transaction to finish
_BATCH_LIMIT = 20_000  # items a transaction takes at most
# rows of COPY a transaction takes at most (one item's may go over): a backlog is committed a
# part at a time, so a marker in it (a rollup pass waits on one) is answered once what came
# before it is committed, not once everything queued behind it is too
_BATCH_ROWS = 100_000
# every history connection's settings: no JIT compilation. PostgreSQL compiles any statement it
# costs above ``jit_above_cost``, which a rollup pass's or a year's aggregate always is, in
# 150 ms of CPU or so each time (measured on PostgreSQL 15): more than most of them then take
SESSION = {"jit": "off"}
# SQLSTATE classes of failures that are the server's or the network's, not the batch's: the
# connection is given up and a new one made (08 connection, 40 rollback, 53 resources such as
# a full disk, 57 operator intervention such as a shutdown, 58 system error)
_TRANSIENT = ("08", "40", "53", "57", "58")


class Copy(NamedTuple):
    """Rows written by COPY into ``table``'s ``columns``; ``key`` is its unique key, on which a
    later row replaces an earlier one. ``convert`` turns a batch's gathered rows into the
    records written and the columns they fill (the first of ``columns``, the rest left NULL);
    ``time_column`` is the index of the column the table is partitioned by."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    convert: Callable[[list[Sequence[Any]]], tuple[Rows, int]] | None = None
    time_column: int | None = None


class _Many:
    __slots__ = ("outcome", "parts")

    def __init__(
        self, parts: Sequence[tuple[str | Copy, Rows]], outcome: Callable[[bool], None] | None
    ) -> None:
        self.parts = parts
        self.outcome = outcome


class _Unsure(NamedTuple):
    txid: int
    backend: int  # the server process that ran it
    items: list[_Many]


class _Lost(Exception):
    """The connection went while a batch ran; ``txid`` is set if its COMMIT was on the way."""

    def __init__(self, cause: BaseException, txid: int | None, backend: int = 0) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.txid = txid
        self.backend = backend


Item = tuple[str, Sequence[Any]] | _Many | Marker


def transient(exc: BaseException) -> bool:
    """A failure of the connection or the server rather than of what was written."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in _TRANSIENT
    return isinstance(exc, (OSError, TimeoutError, asyncpg.InterfaceError))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class PostgresWriter:
    def __init__(
        self,
        dsn: str,
        *,
        loop: asyncio.AbstractEventLoop,
        partitions: dict[str, int] | None = None,
        known_partitions: set[tuple[str, int]] | None = None,
    ) -> None:
        self._dsn = dsn
        self._loop = loop
        self._queue: list[Item] = []
        self._wake = asyncio.Event()
        self._markers = Markers(loop)
        self.error: str | None = None  # why the last batch failed; None once one commits
        self._conn: asyncpg.Connection | None = None
        self._retry_at = 0.0
        self._unsure: list[_Unsure] = []
        self._staged: set[str] = set()  # tables with a staging table on this connection
        # partitioned table -> partition width (ms); the partitions known to exist
        self._widths = partitions or {}
        self._partitions = known_partitions or set()
        self._stopping = False
        self.commits = 0  # transactions committed, for tests and benchmarks
        self.failures = FailureLog(log, "PostgreSQL writes")
        self._task = loop.create_task(self._run())

    # -- queueing (event loop) ----------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._put((sql, params))

    def executemany(
        self, *parts: tuple[str | Copy, Rows], outcome: Callable[[bool], None] | None = None
    ) -> None:
        """Queue statements to be committed together or not at all (the caller no longer
        changes the rows); ``outcome(committed)`` is called once that is known."""
        self._put(_Many(parts, outcome))

    def _put(self, item: Item) -> None:
        self._queue.append(item)
        self._markers.dirty = True
        self._wake.set()

    def committed(self) -> Awaitable[None]:
        def queue(marker: Marker) -> None:
            self._queue.append(marker)
            self._wake.set()

        return self._markers.committed(queue)

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        await self._task
        for unsure in self._unsure:  # never learnt: a resend after the restart finds its keys
            _tell(unsure.items, committed=False)
        if self._conn is not None:
            try:
                await self._conn.close(timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._conn.terminate()

    # -- the task -----------------------------------------------------------------------------

    async def _run(self) -> None:
        owed = OwedFailure()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                if not self._unsure:
                    await self._wake.wait()
                    continue
                # a transaction's fate is owed to what waits on it: asked again while idle
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_EVERY)
                if not self._queue:
                    with contextlib.suppress(Exception):  # (said when it is tried for a batch)
                        await self._connection()
                continue
            batch = self._take()
            markers = [item for item in batch if isinstance(item, Marker)]
            items = [item for item in batch if isinstance(item, _Many)]
            error: str | None = None
            if len(markers) == len(batch):  # markers alone write nothing, and clear no error
                self._markers.answer(markers, owed.answers(len(markers), None))
                continue
            try:
                conn = await self._connection()
                await self._write(conn, batch)
            except Exception as exc:  # every failure is told to what waited; the task goes on
                error = self._failed(exc, items)
            else:
                self.commits += 1
                self.error = None
                self.failures.succeeded()
                _tell(items, committed=True)
            after = written_after_last_marker(isinstance(item, Marker) for item in batch)
            self._markers.answer(markers, owed.answers(len(markers), error, written_after=after))

    def _take(self) -> list[Item]:
        """The next batch: what is queued, up to ``_BATCH_LIMIT`` items or ``_BATCH_ROWS``."""
        queue, rows, end = self._queue, 0, 0
        for item in queue[:_BATCH_LIMIT]:
            if rows >= _BATCH_ROWS and not isinstance(item, Marker):  # (markers right after: in)
                break
            end += 1
            if isinstance(item, _Many):
                rows += sum(len(part) for sql, part in item.parts if isinstance(sql, Copy))
        batch = queue[:end]
        del queue[:end]
        return batch

    def _failed(self, exc: Exception, items: list[_Many]) -> str:
        if isinstance(exc, StoreUnavailable):  # not tried again yet: the last error stands
            _tell(items, committed=False)
            return str(exc)
        cause = exc.cause if isinstance(exc, _Lost) else exc
        failure = self.error = f"PostgreSQL write failed: {describe(cause)}"
        if isinstance(exc, _Lost) or transient(cause):
            self._drop_connection()
        if isinstance(exc, _Lost) and exc.txid is not None:
            log.error("%s; a batch's COMMIT was on the way, its fate is asked later", failure)
            self._unsure.append(_Unsure(exc.txid, exc.backend, items))
        else:
            self.failures.failed(
                f"a batch of {len(items)} items was rolled back: {describe(cause)}"
            )
            _tell(items, committed=False)
        return failure

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        self._retry_at = time.monotonic() + RETRY_EVERY

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if time.monotonic() < self._retry_at:
            raise StoreUnavailable(self.error or "PostgreSQL cannot be reached")
        self._retry_at = time.monotonic() + RETRY_EVERY
        conn = await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            # a transaction this writer left open (its connection lost) ends on its own
            server_settings={**SESSION, "idle_in_transaction_session_timeout": "60000"},
        )
        self._staged.clear()
        try:
            await self._learn_unsure(conn)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        log.info("history: connected to PostgreSQL")
        return conn

    async def _learn_unsure(self, conn: asyncpg.Connection) -> None:
        """What became of the transactions whose COMMIT was on the way when a connection went.
        A server process still holding one (its COMMIT lost on the way, it would wait idle for
        hours) is ended first, which rolls it back; one finishing its COMMIT is waited for."""
        deadline = time.monotonic() + UNSURE_WAIT
        while self._unsure:
            unsure = self._unsure[0]
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = $1 AND state = 'idle in transaction' "
                "AND backend_xid::text::bigint = $2 % 4294967296",
                unsure.backend,
                unsure.txid,
            )
            try:
                status = await conn.fetchval("SELECT txid_status($1)", unsure.txid)
            except asyncpg.InvalidParameterValueError:
                # "in the future": a server that never saw it (a failover), so it is not there
                status = "aborted"
            if status == "in progress":
                if time.monotonic() > deadline:  # asked again with the next connection
                    raise StoreUnavailable(f"transaction {unsure.txid} still in progress")
                await asyncio.sleep(0.05)
                continue
            self._unsure.pop(0)
            log.info("history: the unsure transaction %d was %s", unsure.txid, status)
            _tell(unsure.items, committed=status == "committed")

    async def _write(self, conn: asyncpg.Connection, batch: list[Item]) -> None:
        await self._make_partitions(conn, batch)
        merge = False
        for attempt in range(3):
            try:
                await self._transaction(conn, batch, merge=merge)
                return
            except asyncpg.UniqueViolationError:
                if merge or attempt == 2:
                    raise
                merge = True  # a copied row collides with a kept one: the batch again, merged
            except asyncpg.CheckViolationError:
                if attempt == 2:
                    raise
                # a row for a partition that retention dropped since it was made: made again
                self._partitions.clear()
                await self._make_partitions(conn, batch)

    async def _transaction(self, conn: asyncpg.Connection, batch: list[Item], merge: bool) -> None:
        txid: int | None = None
        committing = False
        try:
            await conn.execute("BEGIN")
            txid = await conn.fetchval("SELECT txid_current()")
            copies: dict[Copy, list[Sequence[Any]]] = {}
            for item in batch:
                if isinstance(item, _Many):
                    for sql, rows in item.parts:
                        if isinstance(sql, Copy):
                            copies.setdefault(sql, []).extend(rows)
                            continue
                        await self._copy(conn, copies, merge)
                        if len(rows) == 1:
                            await conn.execute(sql, *rows[0])
                        else:
                            await conn.executemany(sql, rows)
                elif isinstance(item, tuple):
                    await self._copy(conn, copies, merge)
                    await conn.execute(item[0], *item[1])
            await self._copy(conn, copies, merge)
            committing = True
            await conn.execute("COMMIT")
        except Exception as exc:
            if transient(exc) or conn.is_closed():
                try:
                    backend = conn.get_server_pid()
                except AttributeError:  # (asyncpg forgets it once it has aborted)
                    backend = 0
                raise _Lost(exc, txid if committing else None, backend) from exc
            self._staged.clear()  # staging tables made in this transaction are gone with it
            try:
                await conn.execute("ROLLBACK")
            except Exception as lost:
                raise _Lost(lost, None) from exc
            raise

    async def _copy(
        self, conn: asyncpg.Connection, copies: dict[Copy, list[Sequence[Any]]], merge: bool
    ) -> None:
        for copy, rows in copies.items():
            records, width = copy.convert(rows) if copy.convert else (rows, len(copy.columns))
            filled = copy.columns[:width]
            if not merge:
                await conn.copy_records_to_table(copy.table, records=records, columns=filled)
                continue
            stage = f"stage_{copy.table}"
            if copy.table not in self._staged:
                await conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                    f"(LIKE {copy.table}, stage_order bigserial) ON COMMIT DELETE ROWS"
                )
                self._staged.add(copy.table)
            await conn.copy_records_to_table(stage, records=records, columns=filled)
            rest = [c for c in copy.columns if c not in copy.key]
            columns, key = ", ".join(copy.columns), ", ".join(copy.key)
            update = (
                "UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
                if rest
                else "NOTHING"
            )
            await conn.execute(
                f"INSERT INTO {copy.table} ({columns}) "
                f"SELECT DISTINCT ON ({key}) {columns} FROM {stage} "
                f"ORDER BY {key}, stage_order DESC ON CONFLICT ({key}) DO {update}"
            )
            await conn.execute(f"DELETE FROM {stage}")
        copies.clear()

    async def _make_partitions(self, conn: asyncpg.Connection, batch: list[Item]) -> None:
        """The partitions the batch's rows fall in, made where missing (outside its
        transaction: a partition made is kept whatever becomes of the rows)."""
        needed: set[tuple[str, int]] = set()
        for item in batch:
            if not isinstance(item, _Many):
                continue
            for sql, rows in item.parts:
                if not isinstance(sql, Copy) or sql.time_column is None:
                    continue
                width = self._widths.get(sql.table)
                if width is None:
                    continue
                times = list(map(operator.itemgetter(sql.time_column), rows))
                low, high = min(times) // width, max(times) // width
                if low == high:  # (nearly always: one batch, one week)
                    needed.add((sql.table, low))
                else:
                    needed.update((sql.table, ts // width) for ts in times)
        for table, index in sorted(needed - self._partitions):
            width = self._widths[table]
            with contextlib.suppress(asyncpg.DuplicateTableError):  # made by another process
                await conn.execute(
                    f'CREATE TABLE IF NOT EXISTS "{table}_p{index}" PARTITION OF {table} '
                    f"FOR VALUES FROM ({index * width}) TO ({(index + 1) * width})"
                )
            self._partitions.add((table, index))


def _tell(items: list[_Many], *, committed: bool) -> None:
    for item in items:
        if item.outcome is not None:
            tell(item.outcome, committed)
