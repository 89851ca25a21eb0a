"""The history on SQLite: its own file (``history.db``), WAL, one writer process
(``ProcessWriter``: binding a town's values in a thread took the GIL from the loop), readers in
threads of their own.

Layout, for range scans by (device, identifier, time):

- ``history_devices`` and ``history_series`` give each device and each of its properties a
  small integer, kept in memory, so a point is three numbers;
- ``history_points (series_id, ts, value)`` is a WITHOUT ROWID table whose primary key is
  its only index: a property's values over a range are one contiguous scan. ``value`` has no
  declared type and keeps what it was given: integers, reals, text; booleans are stored as 0/1
  and structs and arrays as JSON in a BLOB (``history_series.kind`` says which);
- ``history_log`` holds events, service replies, status changes and the commands sent; its
  status changes alone are indexed too (``history_log_status``, partial: a row more written
  per login and logout, none per event), so that each device's last one is found at a start
  by one descent, not by walking back through everything it posted since (made by the open
  of a history from before it, once: a scan of the log);
- ``history_taken`` remembers which messages (by a digest of topic, id and payload) were taken,
  for the minutes a device may resend one after a crash;
- ``history_minutes``, ``history_hours`` and ``history_days`` (the town's days) keep
  aggregates (``sqlite_rollups``);
- ``history_retention`` says how long each product's history is kept (``retention``).

Rows are gathered on the event loop (``ingest``) and handed to the writer as one item, at the
end of a loop turn that waits on them or within 50 ms; the writer commits whatever has gathered
(group commit). A handful of values (a QoS 1 post waiting for its PUBACK) is appended to
``history_staged`` instead: in the points each value of a small transaction would cost a page
written, its series' own. The writer moves staged values to the points once ``SETTLE_CHUNK`` are
staged, a slice of the series at a time, between batches and at least every fifty batches
(``settle_some``; a batch that comes meanwhile waits for the slice), and all of them before a
rollup pass, a large flush, a raw aggregate, a retention pass, a close and at a start. A page of
points reads the series' staged values with them, in one snapshot.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hongshan.store.history import replay as replaying
from hongshan.store.history import rollups
from hongshan.store.history import sqlite_rollups as sql_rollups
from hongshan.store.history.ingest import (
    TAKEN_WINDOW_MS,
    Ingest,
    Loaded,
    Statements,
    log_after,
    log_page,
    owner,
)
from hongshan.store.history.model import (
    Bucket,
    Buckets,
    Device,
    LogKind,
    LogPage,
    Point,
    PointPage,
)
from hongshan.store.history.retention import Retention, Step, point_steps
from hongshan.store.sqlite.process_writer import ProcessWriter
from hongshan.store.sqlite.writer import RowInsert, connect

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
CREATE INDEX IF NOT EXISTS history_log_status ON history_log (device_id, ts, seq)
    WHERE kind = 'status';
CREATE TABLE IF NOT EXISTS history_retention (
    product_key TEXT PRIMARY KEY, raw_days REAL, rollup_days REAL
);
CREATE TABLE IF NOT EXISTS history_staged (
    series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value
);
CREATE TABLE IF NOT EXISTS history_taken (
    ts INTEGER NOT NULL, device_id INTEGER NOT NULL, key BLOB NOT NULL,
    PRIMARY KEY (ts, device_id, key)
) WITHOUT ROWID;
"""

# rows the writer gathers across a batch and writes as multi-row INSERTs
STATEMENTS = Statements(
    device=RowInsert(
        "INSERT OR IGNORE INTO history_devices (id, product_key, device_name) VALUES", 3
    ),
    series=RowInsert(
        "INSERT OR IGNORE INTO history_series (id, device_id, identifier, kind) VALUES", 4
    ),
    point=RowInsert("INSERT OR REPLACE INTO history_points (series_id, ts, value) VALUES", 3),
    dirty=sql_rollups.INSERT_DIRTY,
    log=RowInsert(
        "INSERT OR IGNORE INTO history_log (device_id, ts, seq, kind, identifier, body) VALUES", 6
    ),
    taken=RowInsert("INSERT OR IGNORE INTO history_taken (ts, device_id, key) VALUES", 3),
    prune_taken="DELETE FROM history_taken WHERE ts < ?",
    set_retention="INSERT OR REPLACE INTO history_retention VALUES (?, ?, ?)",
    delete_retention="DELETE FROM history_retention WHERE product_key = ?",
    set_meta=sql_rollups.SET_META,
    staged=RowInsert("INSERT INTO history_staged (series_id, ts, value) VALUES", 3),
    settle=sql_rollups.SETTLE,
)
# staged values from which the writer moves some to the points while it has nothing to do
# (fewer wait: a series' values moved cost a page written, however few they are), and about
# how many it moves at a time: the values, among the oldest SETTLE_CHUNK, of the series with
# the oldest, so a batch that comes meanwhile waits for a slice, not for all of them
SETTLE_CHUNK = 5_000
# each series' newest value: one descent of the primary key per series (max() of the key's
# second column within the first is SQLite's min/max optimisation), not a scan of the points
LATEST_POINTS = (
    "SELECT s.id, p.ts, p.value FROM history_series s JOIN history_points p "
    "ON p.series_id = s.id AND p.ts = (SELECT max(ts) FROM history_points WHERE series_id = s.id)"
)
LATEST_STAGED = "SELECT series_id, ts, value FROM history_staged ORDER BY rowid"
# each device's last status entry: one descent of the partial index on status entries (named:
# without statistics the planner prefers the primary key and walks the device's whole log)
LAST_STATUS = (
    "SELECT d.id, (SELECT identifier FROM history_log INDEXED BY history_log_status "
    "WHERE device_id = d.id "
    "AND kind = 'status' ORDER BY ts DESC, seq DESC LIMIT 1) FROM history_devices d"
)
SETTLE_SLICE = 1_000
SMALL_READ_ROWS = 2_000  # a read of at most about this many rows is made on the loop (_read)


def settle_some(conn: sqlite3.Connection) -> bool:
    """The writer's idle work: once ``SETTLE_CHUNK`` values are staged, a slice of them moved
    to the points (``sqlite_rollups.SLICE_SERIES``); whether it moved any."""
    (staged,) = conn.execute("SELECT count(*) FROM history_staged").fetchone()
    if staged < SETTLE_CHUNK:
        return False
    (low,) = conn.execute("SELECT min(rowid) FROM history_staged").fetchone()
    below = low + SETTLE_CHUNK
    clear, choose = sql_rollups.SLICE_SERIES
    conn.execute(clear)
    conn.execute(choose, (SETTLE_SLICE, below))
    for statement in sql_rollups.SETTLE_A_SLICE:
        conn.execute(statement, (below,))
    return True


# a series' staged values in a range, to read with its points (a staged one replaces the
# point at its millisecond)
STAGED_OF_SERIES = (
    "SELECT ts, value FROM history_staged WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY rowid"
)
# a replay's window: the points of the series asked for, a descent of the primary key each
# (``json_each``: any number of series in one parameter), and the log of the devices
REPLAY_POINTS = (
    "SELECT ts, series_id, value FROM history_points "
    "WHERE series_id IN (SELECT value FROM json_each(?)) AND ts >= ? AND ts < ? LIMIT ?"
)
REPLAY_LOG = (
    "SELECT ts, device_id, seq, kind, identifier, body FROM history_log "
    "WHERE device_id IN (SELECT value FROM json_each(?)) AND ts >= ? AND ts < ? LIMIT ?"
)
WRITER_CACHE_KIB = 65_536  # the writer connection's page cache
DELETE_POINTS = "DELETE FROM history_points WHERE series_id = ? AND ts >= ? AND ts < ?"

_unjson = msgspec.json.Decoder()
T = TypeVar("T")


def _from_sql(kind: str, value: Any) -> Any:
    if kind == "bool" and type(value) is int:
        return bool(value)
    if kind == "json" and type(value) is bytes:
        return _unjson.decode(value)
    return value


class SQLiteHistory(Ingest):
    """The history in a SQLite file: ``Ingest`` gathers rows on the loop, a writer process
    commits them, readers in threads answer queries. Never blocks the event loop on the
    database."""

    def __init__(
        self,
        path: str | Path,
        *,
        loop: asyncio.AbstractEventLoop,
        retention: Retention | None = None,
        time_zone: str = "UTC",
    ) -> None:
        self.path = str(path)
        days = rollups.TownDays(time_zone)
        conn = connect(self.path)  # to make and read what is there; the writer has its own
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        conn.executescript(SCHEMA + sql_rollups.SCHEMA + sql_rollups.TEMP_SCHEMA)
        if "pass" not in {row[1] for row in conn.execute("PRAGMA table_info(history_dirty)")}:
            conn.execute(sql_rollups.ADD_PASS)
        devices: dict[Device, int] = {
            (pk, dn): row_id
            for row_id, pk, dn in conn.execute(
                "SELECT id, product_key, device_name FROM history_devices"
            )
        }
        series: dict[Device, dict[str, tuple[int, str]]] = {}
        names = {row_id: device for device, row_id in devices.items()}
        for row_id, device_id, identifier, kind in conn.execute(
            "SELECT id, device_id, identifier, kind FROM history_series"
        ):
            series.setdefault(owner(names, device_id), {})[identifier] = (row_id, kind)
        window = (
            "SELECT device_id, key FROM history_taken "
            "WHERE ts >= (SELECT max(ts) FROM history_taken) - ? ORDER BY ts"
        )
        taken = [(owner(names, d), key) for d, key in conn.execute(window, (TAKEN_WINDOW_MS,))]
        conn.execute("BEGIN")  # values staged when the last server stopped
        for statement in sql_rollups.SETTLE:
            conn.execute(statement)
        conn.execute("COMMIT")
        # after a crash, what the lost passes would have written
        clean = conn.execute("SELECT value FROM history_meta WHERE key = 'clean'").fetchone()
        if clean is None or str(clean[0]) != "1":
            ids = (s[0] for k in series.values() for s in k.values())
            sql_rollups.recover(conn, ids, days)
        zone = conn.execute("SELECT value FROM history_meta WHERE key = 'day_zone'").fetchone()
        if zone is None or zone[0] != time_zone:
            sql_rollups.rebuild_days(conn, days)
        conn.execute(sql_rollups.SET_META, ("clean", "0"))
        loaded = Loaded(
            devices=devices,
            series=series,
            taken=taken,
            through=dict(conn.execute("SELECT * FROM history_rolled")),
            retention={
                pk: Retention(raw_days=raw, rollup_days=rolled)
                for pk, raw, rolled in conn.execute("SELECT * FROM history_retention")
            },
        )
        conn.close()
        # values arrive for every series at once, so inserts land all over the points' B-tree:
        # with SQLite's default 2 MiB of cache each would read its page back from the OS
        writer = ProcessWriter(
            path,
            loop=loop,
            setup=[f"PRAGMA cache_size=-{WRITER_CACHE_KIB}", sql_rollups.TEMP_SCHEMA],
            idle=settle_some,
        )
        super().__init__(
            writer,
            STATEMENTS,
            loaded,
            loop=loop,
            days=days,
            pass_parts=sql_rollups.pass_parts,
            retention=retention,
        )
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()

    async def _retention_steps(self) -> list[Step]:
        """What a retention pass deletes, for each device of a product with a cutoff: its
        series' values a day at a time, its log, its rollups. Only what holds something older
        than its cutoff gets a step: each step is a transaction of its own."""
        await self._settled()  # (a staged value older than a cutoff goes with the rest)
        points, logs, rolled = self._cutoffs()

        def plan(conn: sqlite3.Connection) -> list[Step]:
            found: list[Step] = []
            first_point = "SELECT min(ts) FROM history_points WHERE series_id = ?"
            for series_id, cutoff in points:
                (first,) = conn.execute(first_point, (series_id,)).fetchone()
                if first is not None and first < cutoff:
                    found += point_steps(DELETE_POINTS, series_id, first, cutoff)
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
        await self._close_writing()
        for conn in self._readers:
            conn.close()

    # -- reading ----------------------------------------------------------------------------

    async def _read(
        self, query: Callable[[sqlite3.Connection], T], *, rows: int | None = None
    ) -> T:
        """``query`` on a reader's connection: in a thread, or on the event loop itself when
        it reads at most about ``SMALL_READ_ROWS`` rows (a page of values, an aggregate off
        the rollups). Handing a small read to a thread and back cost more than the read: the
        hand-offs, and the thread taking the GIL back from a busy loop at each step of its
        statements (up to the switch interval each) — the latency of fifty clients' hourly
        averages was made there. The thread holds the GIL while it makes the rows anyway; what
        it spares the loop is a wait on the disk, which a small read of a warm file is not."""
        if rows is not None and rows <= SMALL_READ_ROWS:
            return self._on_connection(query)
        return await asyncio.to_thread(self._on_connection, query)

    def _on_connection(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query`` on this thread's reader connection (made on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            self._readers.append(conn)
        return query(conn)

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
        found = self._point_range(device, identifier, start, end, cursor, descending)
        if found is None:
            return PointPage(points=[], next=None)
        series_id, kind, start, end = found
        order = "DESC" if descending else "ASC"
        sql = (
            "SELECT ts, value FROM history_points WHERE series_id = ? AND ts >= ? AND ts < ? "
            f"ORDER BY ts {order} LIMIT ?"
        )

        def read(c: sqlite3.Connection) -> list[tuple[int, Any]]:
            c.execute("BEGIN")  # (one snapshot of both tables)
            try:
                staged = c.execute(STAGED_OF_SERIES, (series_id, start, end)).fetchall()
                rows = c.execute(sql, (series_id, start, end, limit + 1 + len(staged))).fetchall()
            finally:
                c.execute("COMMIT")
            if not staged:
                return rows
            merged = dict(rows)
            merged.update(staged)  # (in the order they came: the later replaces)
            return sorted(merged.items(), reverse=descending)[: limit + 1]

        rows = await self._read(read, rows=limit)
        more = len(rows) > limit
        points = [Point(ts, _from_sql(kind, value)) for ts, value in rows[:limit]]
        return PointPage(points=points, next=str(points[-1].ts) if more else None)

    async def _replay_window(
        self,
        series: Sequence[int],
        devices: Sequence[int],
        start: int,
        end: int,
        cap: int | None,
    ) -> replaying.Window | None:
        series_list = msgspec.json.encode(series).decode()
        device_list = msgspec.json.encode(devices).decode()
        limit = -1 if cap is None else cap + 1

        def read(c: sqlite3.Connection) -> replaying.Window | None:
            c.execute("BEGIN")  # (one snapshot of both tables)
            try:
                points = c.execute(REPLAY_POINTS, (series_list, start, end, limit)).fetchall()
                if cap is not None and len(points) > cap:
                    return None
                lines = c.execute(REPLAY_LOG, (device_list, start, end, limit)).fetchall()
            finally:
                c.execute("COMMIT")
            if cap is not None and len(points) + len(lines) > cap:
                return None
            return points, lines

        return await self._read(read)

    @staticmethod
    def _decode(kind: str, value: Any) -> Any:
        return _from_sql(kind, value)

    _plain_kinds = frozenset({"int", "float", "text"})

    async def aggregate(
        self,
        devices: Sequence[Device],
        identifier: str,
        buckets: Buckets,
        aggregates: Sequence[str],
    ) -> list[Bucket]:
        plan = await self._aggregated(devices, identifier, buckets, aggregates)
        if plan is None:
            return []
        ids, kind, pieces = plan
        results = await self._read(
            lambda c: sql_rollups.composed(c, ids, pieces, aggregates),
            rows=rollups.rows_read(pieces, len(ids)),
        )
        return rollups.to_buckets(results, lambda value: _from_sql(kind, value), kind)

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
        after = log_after(cursor, start)
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
        return log_page(rows, limit)

    async def latest_values(self) -> dict[Device, dict[str, tuple[Any, int]]]:
        names = self._series_names()

        def read(c: sqlite3.Connection) -> list[tuple[int, int, Any]]:
            c.execute("BEGIN")  # (one snapshot of both tables)
            try:
                rows = c.execute(LATEST_POINTS).fetchall()
                rows += c.execute(LATEST_STAGED).fetchall()  # (newer: they win below)
            finally:
                c.execute("COMMIT")
            return rows

        latest: dict[Device, dict[str, tuple[Any, int]]] = {}
        for series_id, ts, value in await self._read(read):
            found = names.get(series_id)
            if found is None:
                continue
            device, identifier, kind = found
            values = latest.setdefault(device, {})
            if identifier not in values or values[identifier][1] <= ts:
                values[identifier] = (_from_sql(kind, value), ts)
        return latest

    async def last_status(self) -> dict[Device, str]:
        names = {row_id: device for device, row_id in self._devices.items()}
        rows = await self._read(lambda c: c.execute(LAST_STATUS).fetchall())
        return {names[d]: state for d, state in rows if state is not None and d in names}
