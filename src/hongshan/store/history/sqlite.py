"""The history on SQLite: its own file (``history.db``), WAL, one writer thread, readers in
threads of their own.

Layout, for range scans by (device, identifier, time):

- ``history_devices`` and ``history_series`` give each device and each of its properties a
  small integer, kept in memory, so a point is three numbers;
- ``history_points (series_id, ts, value)`` is a WITHOUT ROWID table whose primary key is
  its only index: a property's values over a range are one contiguous scan. ``value`` has no
  declared type and keeps what it was given: integers, reals, text; booleans are stored as 0/1
  and structs and arrays as JSON in a BLOB (``history_series.kind`` says which);
- ``history_log`` holds events, service replies, status changes and the commands sent;
- ``history_taken`` remembers which messages (by a digest of topic, id and payload) were taken,
  for the minutes a device may resend one after a crash;
- ``history_minutes``, ``history_hours`` and ``history_days`` (the town's days) keep
  aggregates (``sqlite_rollups``);
- ``history_retention`` says how long each product's history is kept (``sqlite_retention``).

Rows are gathered on the event loop and handed to the writer once per loop turn as one
``executemany``; the writer commits whatever has gathered (group commit).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hongshan.errors import StoreUnavailable
from hongshan.store.history import sqlite_rollups as rollups
from hongshan.store.history.model import (
    NUMERIC_AGGREGATES,
    Bucket,
    Buckets,
    Device,
    HistoryProblem,
    LogEntry,
    LogKind,
    LogPage,
    Point,
    PointPage,
    SeriesInfo,
)
from hongshan.store.history.sqlite_retention import Retention, Step, Sweeper, point_steps
from hongshan.store.history.taken import TakenKeys
from hongshan.store.sqlite.writer import RowInsert, SQLiteWriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_devices (
    id INTEGER PRIMARY KEY, product_key TEXT NOT NULL, device_name TEXT NOT NULL,
    UNIQUE (product_key, device_name)
);
CREATE TABLE IF NOT EXISTS history_series (
    id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL, identifier TEXT NOT NULL,
    kind TEXT NOT NULL, UNIQUE (device_id, identifier)
);
CREATE TABLE IF NOT EXISTS history_points (
    series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_log (
    device_id INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    identifier TEXT NOT NULL, body BLOB,
    PRIMARY KEY (device_id, ts, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_retention (
    product_key TEXT PRIMARY KEY, raw_days REAL, rollup_days REAL
);
CREATE TABLE IF NOT EXISTS history_taken (
    ts INTEGER NOT NULL, device_id INTEGER NOT NULL, key BLOB NOT NULL,
    PRIMARY KEY (ts, device_id, key)
) WITHOUT ROWID;
"""

# rows the writer gathers across a batch and writes as multi-row INSERTs
INSERT_POINT = RowInsert("INSERT OR REPLACE INTO history_points (series_id, ts, value) VALUES", 3)
INSERT_LOG = RowInsert(
    "INSERT OR IGNORE INTO history_log (device_id, ts, seq, kind, identifier, body) VALUES", 6
)
INSERT_TAKEN = RowInsert("INSERT OR IGNORE INTO history_taken (ts, device_id, key) VALUES", 3)
INSERT_DEVICE = RowInsert(
    "INSERT OR IGNORE INTO history_devices (id, product_key, device_name) VALUES", 3
)
INSERT_SERIES = RowInsert(
    "INSERT OR IGNORE INTO history_series (id, device_id, identifier, kind) VALUES", 4
)

TAKEN_WINDOW_MS = 10 * 60_000  # resends looked for: this long before the newest taken message
TAKEN_KEPT_MS = 60 * 60_000  # taken keys older than this are deleted
PRUNE_EVERY = 60.0  # seconds between deletions of old taken keys
ROLLUP_EVERY = 2.0  # seconds between rollup passes while values come in
INT64 = 1 << 63

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder()
T = TypeVar("T")


def _kind_of(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int:
        return "int"
    if kind is float:
        return "float"
    if kind is str:
        return "text"
    return "json"


def _to_sql(value: Any) -> Any:
    kind = type(value)
    if kind is float or kind is str:
        return value
    if kind is bool:
        return int(value)
    if kind is int:
        return value if -INT64 <= value < INT64 else float(value)
    return _json.encode(value)


def _from_sql(kind: str, value: Any) -> Any:
    if kind == "bool" and type(value) is int:
        return bool(value)
    if kind == "json" and type(value) is bytes:
        return _unjson.decode(value)
    return value


def _cursor(text: str | None, parts: int) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        numbers = tuple(int(part) for part in text.split(":"))
    except ValueError:
        numbers = ()
    if len(numbers) != parts:
        raise HistoryProblem(f"cursor {text!r} is not one this history gave")
    return numbers


class SQLiteHistory:
    def __init__(
        self,
        path: str | Path,
        *,
        loop: asyncio.AbstractEventLoop,
        retention: Retention | None = None,
        time_zone: str = "UTC",
    ) -> None:
        self.path = str(path)
        self._days = rollups.TownDays(time_zone)  # the day rollups are the town's days
        self.default_retention = retention or Retention()
        self._loop = loop
        self._writer = SQLiteWriter(path, loop=loop)
        conn = self._writer.conn
        conn.executescript(SCHEMA + rollups.SCHEMA + rollups.TEMP_SCHEMA)
        self._devices: dict[Device, int] = {
            (pk, dn): row_id
            for row_id, pk, dn in conn.execute(
                "SELECT id, product_key, device_name FROM history_devices"
            )
        }
        # device -> identifier -> (series id, kind)
        self._series: dict[Device, dict[str, tuple[int, str]]] = {}
        names = {row_id: device for device, row_id in self._devices.items()}
        for row_id, device_id, identifier, kind in conn.execute(
            "SELECT id, device_id, identifier, kind FROM history_series"
        ):
            self._series.setdefault(names[device_id], {})[identifier] = (row_id, kind)
        self._next_device = itertools.count(max(self._devices.values(), default=0) + 1)
        self._next_series = itertools.count(
            max((s[0] for known in self._series.values() for s in known.values()), default=0) + 1
        )
        self._seq = itertools.count(int(time.time() * 1000))  # unique across restarts
        self._taken_keys = TakenKeys(loop)
        window = (
            "SELECT device_id, key FROM history_taken "
            "WHERE ts >= (SELECT max(ts) FROM history_taken) - ? ORDER BY ts"
        )
        rows = conn.execute(window, (TAKEN_WINDOW_MS,))
        self._taken_keys.restore((names[device_id], key) for device_id, key in rows)
        self._points: list[tuple[int, int, Any]] = []
        self._log: list[tuple[int, int, int, str, str, bytes]] = []
        self._taken: list[tuple[int, int, bytes]] = []
        self._taken_by: list[tuple[Device, bytes]] = []  # the same keys, by device
        # catalogue rows made this turn; they go in the same transaction as the rows they name
        self._new_devices: list[tuple[int, str, str]] = []
        self._new_series_rows: list[tuple[int, int, str, str]] = []
        self._failure_seen: str | None = None  # the writer error the catalogue was resent for
        self._flush_scheduled = False
        self._commit_waiters: list[asyncio.Future[None]] = []  # committed() of this turn
        self._pruned_at = time.monotonic()
        self._arrived: dict[int, int] = {}  # series -> the last arrival time given to a value
        self._late: list[tuple[int, int]] = []  # minutes of values out of order, noted on disk
        self._rollup: asyncio.TimerHandle | None = None
        self._last_pass: asyncio.Future[None] | None = None
        # after a crash, what the lost passes would have written
        clean = conn.execute("SELECT value FROM history_meta WHERE key = 'clean'").fetchone()
        if clean is None or clean[0] != 1:
            ids = (s[0] for k in self._series.values() for s in k.values())
            rollups.recover(conn, ids, self._days)
        self._rollups = rollups.Rollups(conn, self._days)
        zone = conn.execute("SELECT value FROM history_meta WHERE key = 'day_zone'").fetchone()
        if zone is None or zone[0] != time_zone:
            rollups.rebuild_days(conn, self._days)
        conn.execute(rollups.SET_META, ("clean", 0))
        self._retention = {
            pk: Retention(raw_days=raw, rollup_days=rolled)
            for pk, raw, rolled in conn.execute("SELECT * FROM history_retention")
        }
        self.sweeper = Sweeper(self._writer, loop, self._retention_steps)
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()

    # -- writing ----------------------------------------------------------------------------

    def add_points(
        self, device: Device, points: Iterable[tuple[str, int, Any]], *, arrival: bool = False
    ) -> None:
        known = self._series.get(device)
        if known is None:
            known = self._series[device] = {}
        rows, arrived = self._points, self._arrived
        dirty, through = self._rollups.dirty, self._rollups.through
        for identifier, ts, value in points:
            found = known.get(identifier)
            series_id = (
                found[0] if found is not None else self._new_series(device, identifier, value)
            )
            if arrival:
                # two values of a property arriving in one millisecond (a device sending its
                # backlog) must not replace each other: the later takes the next millisecond
                previous = arrived.get(series_id, 0)
                if ts <= previous:
                    ts = previous + 1
                arrived[series_id] = ts
            kind = type(value)
            if (
                kind is not float
                and kind is not str
                and (kind is not int or not -INT64 <= value < INT64)
            ):
                value = _to_sql(value)
            rows.append((series_id, ts, value))
            minute = (series_id, ts - ts % rollups.MINUTE)
            dirty.add(minute)
            if ts < through.get(series_id, rollups.LOWEST):  # below the mark: noted on disk
                self._late.append(minute)
        if not self._flush_scheduled:
            self._schedule_flush()
        if self._rollup is None:
            self._rollup = self._loop.call_later(ROLLUP_EVERY, self._roll_up)

    def add_log(self, device: Device, kind: LogKind, identifier: str, ts: int, body: Any) -> None:
        entry = (self._device_id(device), ts, next(self._seq), kind.value, identifier)
        self._log.append((*entry, _json.encode(body)))
        if not self._flush_scheduled:
            self._schedule_flush()

    def add_taken(self, device: Device, key: bytes, ts: int) -> None:
        self._taken.append((ts, self._device_id(device), key))
        self._taken_by.append((device, key))
        self._taken_keys.add(device, key)
        if not self._flush_scheduled:
            self._schedule_flush()

    def was_taken(self, device: Device, key: bytes) -> Awaitable[None] | None:
        return self._taken_keys.was_taken(device, key)

    def committed(self) -> Awaitable[None]:
        """Done once everything added so far is durable. What this loop turn added goes to
        the writer with the turn's other rows, and one marker answers every waiter of the
        turn: a thousand QoS 1 posts a turn are one item and one marker, not a thousand."""
        if not self._flush_scheduled:
            return self._writer.committed()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._commit_waiters.append(waiter)
        return waiter

    def _answer_waiters(self) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []
        marker = self._writer.committed()

        def answer(done: Awaitable[None]) -> None:
            assert isinstance(done, asyncio.Future)
            error = None if done.cancelled() else done.exception()
            for waiter in waiters:
                if waiter.done():
                    continue
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

        assert isinstance(marker, asyncio.Future)
        marker.add_done_callback(answer)

    @property
    def problem(self) -> str | None:
        return self._writer.error

    def _device_id(self, device: Device) -> int:
        row_id = self._devices.get(device)
        if row_id is None:
            row_id = self._devices[device] = next(self._next_device)
            self._new_devices.append((row_id, *device))
        return row_id

    def _new_series(self, device: Device, identifier: str, value: Any) -> int:
        device_id = self._device_id(device)
        series_id, kind = next(self._next_series), _kind_of(value)
        self._series[device][identifier] = (series_id, kind)
        self._new_series_rows.append((series_id, device_id, identifier, kind))
        return series_id

    def _schedule_flush(self) -> None:
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Hand what gathered this loop turn to the writer as one item: committed together
        or not at all, so a resend after a crash finds either all of a message or none."""
        self._flush_scheduled = False
        parts: list[tuple[str | RowInsert, Sequence[Sequence[Any]]]] = []
        failure = self._writer.error
        if failure is not None and failure is not self._failure_seen:
            # a failed batch may have held catalogue rows that later rows refer to: send the
            # whole catalogue again (INSERT OR IGNORE) with the first rows after it
            self._failure_seen = failure
            self._new_devices = [(i, pk, dn) for (pk, dn), i in self._devices.items()]
            self._new_series_rows = [
                (series_id, self._devices[device], identifier, kind)
                for device, known in self._series.items()
                for identifier, (series_id, kind) in known.items()
            ]
        for sql, rows in (
            (INSERT_DEVICE, self._new_devices),
            (INSERT_SERIES, self._new_series_rows),
            (INSERT_POINT, self._points),
            (rollups.INSERT_DIRTY, self._late),
            (INSERT_LOG, self._log),
            (INSERT_TAKEN, self._taken),
        ):
            if rows:
                parts.append((sql, rows))
        if not parts:
            if self._commit_waiters:
                self._answer_waiters()
            return
        taken, taking = self._taken_by, self._taken_keys.take_turn()
        self._new_devices, self._new_series_rows = [], []
        self._points, self._log, self._taken, self._taken_by = [], [], [], []
        self._late = []
        if taking is not None:

            def settle(committed: bool) -> None:
                self._taken_keys.settle(taken, taking, committed, self._writer.error)

            self._writer.executemany(*parts, outcome=settle)
        else:
            self._writer.executemany(*parts)
        if self._commit_waiters:
            self._answer_waiters()
        now = time.monotonic()
        if now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            oldest = int(time.time() * 1000) - TAKEN_KEPT_MS
            self._writer.execute("DELETE FROM history_taken WHERE ts < ?", (oldest,))

    def _roll_up(self) -> asyncio.Future[None] | None:
        """A rollup pass (after this turn's values in the writer's queue, so it sees them)."""
        self._rollup = None
        if not self._rollups.dirty:
            return self._last_pass
        self._flush()
        parts, settled = self._rollups.take_pass()
        done: asyncio.Future[None] = self._loop.create_future()

        def outcome(committed: bool) -> None:
            if committed:
                done.set_result(None)
                return
            self._rollups.owe(settled)  # the next pass recomputes them
            if self._rollup is None:
                self._rollup = self._loop.call_later(ROLLUP_EVERY, self._roll_up)
            done.set_exception(StoreUnavailable(self._writer.error or "rollup pass failed"))

        self._writer.executemany(*parts, outcome=outcome)
        # a failure nobody awaits is not reported again: the writer logged it
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._last_pass = done
        return done

    async def _rolled_up(self) -> None:
        """Every value so far is in the rollups (a pass now if any is owed)."""
        if self._rollup is not None:
            self._rollup.cancel()
        passing = self._roll_up()
        if passing is not None:
            await asyncio.shield(passing)

    def start(self) -> None:
        """Begin the background work that needs the running loop (retention passes)."""
        self.sweeper.start()

    def retention(self, product_key: str) -> Retention:
        return self._retention.get(product_key, self.default_retention)

    def set_retention(self, product_key: str, retention: Retention | None) -> None:
        """A product's own retention; None goes back to the default."""
        if retention is None:
            self._retention.pop(product_key, None)
            self._writer.execute(
                "DELETE FROM history_retention WHERE product_key = ?", (product_key,)
            )
        else:
            self._retention[product_key] = retention
            self._writer.execute(
                "INSERT OR REPLACE INTO history_retention VALUES (?, ?, ?)",
                (product_key, retention.raw_days, retention.rollup_days),
            )

    async def _retention_steps(self) -> list[Step]:
        """What a retention pass deletes, for each device of a product with a cutoff: its
        series' values a day at a time, its log, its rollups. Only what holds something older
        than its cutoff gets a step: each step is a transaction of its own."""
        now = int(time.time() * 1000)
        points: list[tuple[int, int]] = []  # (series, raw cutoff)
        logs: list[tuple[int, int]] = []  # (device, raw cutoff)
        rolled: list[tuple[int, int]] = []  # (series, rollup cutoff)
        for device, device_id in self._devices.items():
            raw, rollup = self.retention(device[0]).cutoffs(now)
            if raw is not None:
                logs.append((device_id, raw))
            for series_id, _ in self._series.get(device, {}).values():
                if raw is not None:
                    points.append((series_id, raw))
                if rollup is not None:
                    rolled.append((series_id, rollup))

        def plan(conn: sqlite3.Connection) -> list[Step]:
            found: list[Step] = []
            first_point = "SELECT min(ts) FROM history_points WHERE series_id = ?"
            for series_id, cutoff in points:
                (first,) = conn.execute(first_point, (series_id,)).fetchone()
                if first is not None and first < cutoff:
                    found += point_steps(series_id, first, cutoff)
            older_log = "SELECT 1 FROM history_log WHERE device_id = ? AND ts < ? LIMIT 1"
            for device_id, cutoff in logs:
                if conn.execute(older_log, (device_id, cutoff)).fetchone():
                    found.append(
                        (
                            "DELETE FROM history_log WHERE device_id = ? AND ts < ?",
                            (device_id, cutoff),
                        )
                    )
            for table in rollups.ROLLUP_TABLES:
                older = f"SELECT 1 FROM {table} WHERE series_id = ? AND bucket < ? LIMIT 1"
                for series_id, cutoff in rolled:
                    if conn.execute(older, (series_id, cutoff)).fetchone():
                        found.append(
                            (
                                f"DELETE FROM {table} WHERE series_id = ? AND bucket < ?",
                                (series_id, cutoff),
                            )
                        )
            return found

        return await self._read(plan)

    async def close(self) -> None:
        self.sweeper.stop()
        if self._rollup is not None:
            self._rollup.cancel()
        self._roll_up()
        self._flush()
        self._writer.execute(rollups.SET_META, ("clean", 1))
        await self._writer.close()
        for conn in self._readers:
            conn.close()

    # -- reading ----------------------------------------------------------------------------

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._in_thread, query)

    def _in_thread(self, query: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            self._readers.append(conn)
        return query(conn)

    async def series(self, device: Device) -> list[SeriesInfo]:
        known = self._series.get(device, {})
        return [SeriesInfo(identifier, kind) for identifier, (_, kind) in sorted(known.items())]

    def _lookup(self, device: Device, identifier: str) -> tuple[int, str] | None:
        return self._series.get(device, {}).get(identifier)

    async def points(
        self,
        device: Device,
        identifier: str,
        start: int,
        end: int,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        descending: bool = False,
    ) -> PointPage:
        after = _cursor(cursor, 1)
        if after is not None:
            if descending:
                end = min(end, after[0])
            else:
                start = max(start, after[0] + 1)
        found = self._lookup(device, identifier)
        if found is None or start >= end:
            return PointPage(points=[], next=None)
        series_id, kind = found
        order = "DESC" if descending else "ASC"
        sql = (
            "SELECT ts, value FROM history_points WHERE series_id = ? AND ts >= ? AND ts < ? "
            f"ORDER BY ts {order} LIMIT ?"
        )
        rows = await self._read(
            lambda c: c.execute(sql, (series_id, start, end, limit + 1)).fetchall()
        )
        more = len(rows) > limit
        points = [Point(ts, _from_sql(kind, value)) for ts, value in rows[:limit]]
        return PointPage(points=points, next=str(points[-1].ts) if more else None)

    async def aggregate(
        self,
        devices: Sequence[Device],
        identifier: str,
        buckets: Buckets,
        aggregates: Sequence[str],
    ) -> list[Bucket]:
        found = [s for s in (self._lookup(d, identifier) for d in devices) if s is not None]
        if not found:
            return []
        kinds = {kind for _, kind in found}
        if NUMERIC_AGGREGATES.intersection(aggregates) and kinds & {"text", "json"}:
            raise HistoryProblem(
                f"{identifier} holds {'/'.join(sorted(kinds))} values: only count, first and "
                "last apply to it"
            )
        ids = [series_id for series_id, _ in found]
        kind = kinds.pop() if len(kinds) == 1 else "float"
        table = rollups.level(buckets, self._days)
        if table != "history_points":
            await self._rolled_up()
        results = await self._read(lambda c: rollups.aggregate(c, ids, buckets, aggregates, table))
        return rollups.to_buckets(results, lambda value: _from_sql(kind, value))

    async def log(
        self,
        device: Device,
        start: int,
        end: int,
        *,
        kinds: Sequence[LogKind] = (),
        limit: int = 1000,
        cursor: str | None = None,
    ) -> LogPage:
        device_id = self._devices.get(device)
        if device_id is None:
            return LogPage(entries=[], next=None)
        after = _cursor(cursor, 2) or (start - 1, INT64 - 1)
        sql = (
            "SELECT ts, seq, kind, identifier, body FROM history_log WHERE device_id = ? "
            "AND (ts, seq) > (?, ?) AND ts < ?"
        )
        params: list[Any] = [device_id, after[0], after[1], end]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params += [kind.value for kind in kinds]
        sql += " ORDER BY ts, seq LIMIT ?"
        params.append(limit + 1)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        entries = [
            LogEntry(ts, LogKind(kind), identifier, _unjson.decode(body))
            for ts, _, kind, identifier, body in rows[:limit]
        ]
        last = rows[limit - 1] if len(rows) > limit else None
        return LogPage(entries=entries, next=f"{last[0]}:{last[1]}" if last else None)
