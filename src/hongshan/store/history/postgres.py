"""The history on PostgreSQL: asyncpg, one writer task with a connection of its own (COPY for
the points and the log), reads from a small pool. The same ``HistoryStore`` as SQLite's, for a
town that has outgrown one machine's disk or wants its history where its other data is.

Layout (the SQLite store's, in PostgreSQL's types):

- ``history_devices`` and ``history_series`` give each device and property a small integer;
- ``history_points (series_id, ts, num, txt)``: a number (numbers, booleans) or a text (text,
  and structs and arrays as JSON), keyed (series_id, ts); ``history_log`` the log, keyed
  (device_id, ts, seq), its status changes also by a partial index (``history_log_status``:
  each device's last at a start is one descent). Both are partitioned by time, a week
  (``PARTITION_MS``) a partition, made as rows arrive for it; retention drops a whole
  partition once every product's cutoff has passed its end, and deletes day by day within the
  others. Where the TimescaleDB extension is installed (found at open) they are hypertables
  instead, with weekly chunks and the points compressed (segmented by series) once a week old;
- the rollups (``postgres_rollups``), the taken keys, retention and meta as in SQLite.

Tables go in the connection's current schema: put ``?search_path=NAME`` on the URL to choose.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import msgspec

from hongshan.errors import ConfigError, StoreUnavailable
from hongshan.store.history import postgres_rollups as sql_rollups
from hongshan.store.history import replay as replaying
from hongshan.store.history import rollups
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
from hongshan.store.postgres.writer import SESSION, Copy, PostgresWriter, describe, transient

log = logging.getLogger("hongshan.history")

PARTITION_MS = 7 * 86_400_000  # a week of points or log a partition
TIMED = ("history_points", "history_log")  # the tables partitioned by time
CLOSE_TIMEOUT = 5.0  # seconds closing waits for PostgreSQL to say goodbye
PASS_CONNECTIONS = 2  # connections rollup passes run on (``ingest.SHARE_FROM``)

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_devices (
    id integer PRIMARY KEY, product_key text NOT NULL, device_name text NOT NULL,
    UNIQUE (product_key, device_name)
);
CREATE TABLE IF NOT EXISTS history_series (
    id integer PRIMARY KEY, device_id integer NOT NULL, identifier text NOT NULL,
    kind text NOT NULL, UNIQUE (device_id, identifier)
);
CREATE TABLE IF NOT EXISTS history_points (
    series_id integer NOT NULL, ts bigint NOT NULL, num double precision, txt text,
    PRIMARY KEY (series_id, ts)
){partitioned};
CREATE TABLE IF NOT EXISTS history_log (
    device_id integer NOT NULL, ts bigint NOT NULL, seq bigint NOT NULL, kind text NOT NULL,
    identifier text NOT NULL, body json,
    PRIMARY KEY (device_id, ts, seq)
){partitioned};
CREATE INDEX IF NOT EXISTS history_log_status ON history_log (device_id, ts, seq)
    WHERE kind = 'status';
CREATE TABLE IF NOT EXISTS history_retention (
    product_key text PRIMARY KEY, raw_days double precision, rollup_days double precision
);
CREATE TABLE IF NOT EXISTS history_taken (
    ts bigint NOT NULL, device_id integer NOT NULL, key bytea NOT NULL,
    PRIMARY KEY (ts, device_id, key)
);
"""
PARTITIONED = " PARTITION BY RANGE (ts)"
_NUMBERS = {int, float}  # the types of the stored values written into ``num``
# TimescaleDB: integer time in ms, weekly chunks, points compressed a week after
TIMESCALE = f"""
CREATE OR REPLACE FUNCTION history_now_ms() RETURNS bigint LANGUAGE sql STABLE AS
    $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;
SELECT create_hypertable('history_points', 'ts', chunk_time_interval => {PARTITION_MS},
    if_not_exists => true);
SELECT create_hypertable('history_log', 'ts', chunk_time_interval => {PARTITION_MS},
    if_not_exists => true);
SELECT set_integer_now_func('history_points', 'history_now_ms', replace_if_exists => true);
SELECT set_integer_now_func('history_log', 'history_now_ms', replace_if_exists => true);
ALTER TABLE history_points SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'ts');
SELECT add_compression_policy('history_points', compress_after => {PARTITION_MS}::bigint,
    if_not_exists => true);
"""


def _points(rows: list[Sequence[Any]]) -> tuple[Sequence[Sequence[Any]], int]:
    """(series, ts, stored value) as (series, ts, num, txt); where every value is a number
    (nearly always), the rows as they are, into (series, ts, num)."""
    if set(map(type, map(operator.itemgetter(2), rows))) <= _NUMBERS:
        return rows, 3
    return [
        (s, t, v, None) if (k := type(v)) is not str and k is not bytes else (s, t, None, _text(v))
        for s, t, v in rows
    ], 4


def _text(value: str | bytes) -> str:
    """Text as PostgreSQL keeps it (JSON bytes decoded); it cannot hold NUL, which becomes
    U+FFFD."""
    text = value.decode() if type(value) is bytes else value
    assert isinstance(text, str)
    return text.replace("\0", "\ufffd") if "\0" in text else text


def _log(rows: list[Sequence[Any]]) -> tuple[Sequence[Sequence[Any]], int]:
    return [(*row[:5], row[5].decode()) for row in rows], 6


STATEMENTS = Statements(
    device="INSERT INTO history_devices VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    series="INSERT INTO history_series VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    point=Copy(
        "history_points",
        ("series_id", "ts", "num", "txt"),
        key=("series_id", "ts"),
        convert=_points,
        time_column=1,
    ),
    dirty=sql_rollups.INSERT_DIRTY,
    log=Copy(
        "history_log",
        ("device_id", "ts", "seq", "kind", "identifier", "body"),
        key=("device_id", "ts", "seq"),
        convert=_log,
        time_column=1,
    ),
    taken=Copy("history_taken", ("ts", "device_id", "key"), key=("ts", "device_id", "key")),
    prune_taken="DELETE FROM history_taken WHERE ts < $1",
    set_retention=(
        "INSERT INTO history_retention VALUES ($1, $2, $3) ON CONFLICT (product_key) "
        "DO UPDATE SET raw_days = $2, rollup_days = $3"
    ),
    delete_retention="DELETE FROM history_retention WHERE product_key = $1",
    set_meta=sql_rollups.SET_META,
)
DELETE_POINTS = "DELETE FROM history_points WHERE series_id = $1 AND ts >= $2 AND ts < $3"
# each series' newest value and each device's last status entry: an index descent each
LATEST_POINTS = (
    "SELECT s.id, p.ts, p.num, p.txt FROM history_series s CROSS JOIN LATERAL "
    "(SELECT ts, num, txt FROM history_points WHERE series_id = s.id ORDER BY ts DESC LIMIT 1) p"
)
LAST_STATUS = (
    "SELECT d.id, l.identifier FROM history_devices d CROSS JOIN LATERAL "
    "(SELECT identifier FROM history_log WHERE device_id = d.id AND kind = 'status' "
    "ORDER BY ts DESC, seq DESC LIMIT 1) l"
)

# a replay's window: the points of the series asked for and the log of the devices
REPLAY_POINTS = (
    "SELECT ts, series_id, num, txt FROM history_points "
    "WHERE series_id = ANY($1::integer[]) AND ts >= $2 AND ts < $3 LIMIT $4"
)
REPLAY_LOG = (
    "SELECT ts, device_id, seq, kind, identifier, body::text FROM history_log "
    "WHERE device_id = ANY($1::integer[]) AND ts >= $2 AND ts < $3 LIMIT $4"
)

_unjson = msgspec.json.Decoder()
T = TypeVar("T")


def _from_pg(kind: str, value: Any) -> Any:
    """A value as it went in, by its series' kind (the kind of the series' first value: a
    float property whose first value was 20 is an "int" series holding 20.5 too)."""
    if type(value) is str:
        if kind == "json":
            try:
                return _unjson.decode(value)
            except msgspec.DecodeError:
                return value
        return value
    if value is None:
        return None
    if kind == "int":
        return int(value) if value.is_integer() else value
    if kind == "bool":
        return bool(value)
    return value


class PostgresHistory(Ingest):
    """The history in PostgreSQL: ``Ingest`` gathers rows on the loop, one writer task COPYs
    them in group commits, a pool answers queries, rollup passes have connections of their own."""

    def __init__(
        self,
        dsn: str,
        writer: PostgresWriter,
        pool: asyncpg.Pool,
        loaded: Loaded,
        *,
        loop: asyncio.AbstractEventLoop,
        days: rollups.TownDays,
        retention: Retention | None,
        timescale: bool,
        passes: Sequence[PostgresWriter],
    ) -> None:
        super().__init__(
            writer,
            STATEMENTS,
            loaded,
            loop=loop,
            days=days,
            pass_parts=sql_rollups.pass_parts,
            retention=retention,
            pass_writers=passes,
        )
        self.dsn = dsn
        self.timescale = timescale  # hypertables rather than partitions
        self._pool = pool

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        retention: Retention | None = None,
        time_zone: str = "UTC",
    ) -> PostgresHistory:
        """Connect, make the tables that are missing, read the catalogue, redo what a crash
        lost. Raises ``ConfigError`` when PostgreSQL cannot be reached or refuses."""
        loop = asyncio.get_running_loop()
        days = rollups.TownDays(time_zone)
        try:
            return await cls._open(dsn, loop, days, retention)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(f"history_url: cannot open the history: {describe(exc)}") from exc

    @classmethod
    async def _open(
        cls,
        dsn: str,
        loop: asyncio.AbstractEventLoop,
        days: rollups.TownDays,
        retention: Retention | None,
    ) -> PostgresHistory:
        conn = await asyncpg.connect(dsn, timeout=10, server_settings=SESSION)
        time_zone = days.name
        try:
            timescale = await _timescale(conn)
            async with conn.transaction():
                # one opener at a time makes the tables
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hongshan history'))")
                exists = await conn.fetchval("SELECT to_regclass('history_points') IS NOT NULL")
                await conn.execute(
                    SCHEMA.format(partitioned="" if timescale else PARTITIONED) + sql_rollups.SCHEMA
                )
                if timescale and not exists:
                    await conn.execute(TIMESCALE)
            loaded = await _load(conn)
            clean = await conn.fetchval("SELECT value FROM history_meta WHERE key = 'clean'")
            if clean != "1":
                await sql_rollups.recover(conn, days)
            if clean != "1" or not await sql_rollups.marks_are_latest(conn):
                loaded = loaded._replace(through=await sql_rollups.marks(conn))
            zone = await conn.fetchval("SELECT value FROM history_meta WHERE key = 'day_zone'")
            if zone != time_zone:
                await sql_rollups.rebuild_days(conn, days)
            await conn.execute(sql_rollups.SET_META, "clean", "0")
            known = set() if timescale else await _partitions(conn)
        finally:
            await conn.close()
        writer = PostgresWriter(
            dsn,
            loop=loop,
            partitions={} if timescale else dict.fromkeys(TIMED, PARTITION_MS),
            known_partitions=known,
        )
        # rollup passes on connections of their own: the database computes them in processes
        # of their own while the writer's COPYs go on, a large one on two cores
        passes = [PostgresWriter(dsn, loop=loop) for _ in range(PASS_CONNECTIONS)]
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=4, command_timeout=60, server_settings=SESSION
            )
        except BaseException:
            for opened in (writer, *passes):
                await opened.close()
            raise
        return cls(
            dsn,
            writer,
            pool,
            loaded,
            loop=loop,
            days=days,
            retention=retention,
            timescale=timescale,
            passes=passes,
        )

    async def close(self) -> None:
        await self._close_writing()
        try:  # PostgreSQL gone: the pool's connections are let go of rather than waited for
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            self._pool.terminate()

    # -- retention ----------------------------------------------------------------------------

    async def _retention_steps(self) -> list[Step]:
        """A pass's deletions: whole partitions (or chunks) older than every product's cutoff
        first, then what is left older than each series' and device's own cutoff, a day of one
        series per step; only what holds something older than its cutoff gets a step."""
        points, logs, rolled = self._cutoffs()
        steps: list[Step] = []
        if logs and len(logs) == len(self._devices):  # every device's product has a cutoff
            floor = min(cutoff for _, cutoff in logs)
            steps += await self._drops(floor)
        async with self._pool.acquire() as conn:
            first_point = "SELECT min(ts) FROM history_points WHERE series_id = $1"
            for series_id, cutoff in points:
                first = await conn.fetchval(first_point, series_id)
                if first is not None and first < cutoff:
                    steps += point_steps(DELETE_POINTS, series_id, first, cutoff)
            older_log = "SELECT 1 FROM history_log WHERE device_id = $1 AND ts < $2 LIMIT 1"
            for device_id, cutoff in logs:
                if await conn.fetchval(older_log, device_id, cutoff):
                    steps.append(
                        (
                            "DELETE FROM history_log WHERE device_id = $1 AND ts < $2",
                            (device_id, cutoff),
                        )
                    )
            for table in rollups.ROLLUP_TABLES:
                older = f"SELECT 1 FROM {table} WHERE series_id = $1 AND bucket < $2 LIMIT 1"
                for series_id, cutoff in rolled:
                    if await conn.fetchval(older, series_id, cutoff):
                        steps.append(
                            (
                                f"DELETE FROM {table} WHERE series_id = $1 AND bucket < $2",
                                (series_id, cutoff),
                            )
                        )
        return steps

    async def _drops(self, floor: int) -> list[Step]:
        """Partitions (chunks) of the points and the log wholly older than ``floor``."""
        if self.timescale:
            return [(f"SELECT drop_chunks('{table}', older_than => $1::bigint)", (floor,))
                    for table in TIMED]  # fmt: skip
        async with self._pool.acquire() as conn:
            known = await _partitions(conn)
        return [
            (f'DROP TABLE IF EXISTS "{table}_p{index}"', ())
            for table, index in sorted(known)
            if (index + 1) * PARTITION_MS <= floor
        ]

    # -- reading ------------------------------------------------------------------------------

    async def _read(self, query: Callable[[sql_rollups.Conn], Awaitable[T]]) -> T:
        """``query`` on a connection from the pool; PostgreSQL unreachable is
        ``StoreUnavailable`` (the API's 503)."""
        try:
            async with self._pool.acquire() as conn:
                return await query(conn)
        except Exception as exc:
            if transient(exc):
                raise StoreUnavailable(f"PostgreSQL read failed: {describe(exc)}") from exc
            raise

    async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        return await self._read(lambda conn: conn.fetch(sql, *params))

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
        rows = await self._fetch(
            "SELECT ts, num, txt FROM history_points WHERE series_id = $1 AND ts >= $2 "
            f"AND ts < $3 ORDER BY ts {order} LIMIT $4",
            series_id,
            start,
            end,
            limit + 1,
        )
        more = len(rows) > limit
        points = [
            Point(ts, _from_pg(kind, sql_rollups.stored(num, txt))) for ts, num, txt in rows[:limit]
        ]
        return PointPage(points=points, next=str(points[-1].ts) if more else None)

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
        results = await self._read(lambda conn: sql_rollups.composed(conn, ids, pieces, aggregates))
        return rollups.to_buckets(results, lambda value: _from_pg(kind, value), kind)

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
            "SELECT ts, seq, kind, identifier, body FROM history_log WHERE device_id = $1 "
            "AND (ts, seq) > ($2, $3) AND ts < $4"
        )
        params: list[Any] = [device_id, after[0], after[1], end]
        if kinds:
            sql += " AND kind = ANY($5::text[])"
            params.append([kind.value for kind in kinds])
        sql += f" ORDER BY ts, seq LIMIT {int(limit) + 1}"
        rows = await self._fetch(sql, *params)
        return log_page(rows, limit)

    async def _replay_window(
        self,
        series: Sequence[int],
        devices: Sequence[int],
        start: int,
        end: int,
        cap: int | None,
    ) -> replaying.Window | None:
        limit = None if cap is None else cap + 1

        async def read(conn: Any) -> replaying.Window | None:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = await conn.fetch(REPLAY_POINTS, list(series), start, end, limit)
                if cap is not None and len(rows) > cap:
                    return None
                logged = await conn.fetch(REPLAY_LOG, list(devices), start, end, limit)
            if cap is not None and len(rows) + len(logged) > cap:
                return None
            points = [(ts, s, num if txt is None else txt) for ts, s, num, txt in rows]
            return points, [tuple(line) for line in logged]

        return await self._read(read)

    @staticmethod
    def _decode(kind: str, value: Any) -> Any:
        return _from_pg(kind, value)

    _plain_kinds = frozenset({"float", "text"})

    async def latest_values(self) -> dict[Device, dict[str, tuple[Any, int]]]:
        names = self._series_names()
        latest: dict[Device, dict[str, tuple[Any, int]]] = {}
        for series_id, ts, num, txt in await self._fetch(LATEST_POINTS):
            found = names.get(series_id)
            if found is not None:
                device, identifier, kind = found
                value = _from_pg(kind, sql_rollups.stored(num, txt))
                latest.setdefault(device, {})[identifier] = (value, ts)
        return latest

    async def last_status(self) -> dict[Device, str]:
        names = {row_id: device for device, row_id in self._devices.items()}
        rows = await self._fetch(LAST_STATUS)
        return {names[d]: state for d, state in rows if d in names}


async def _timescale(conn: asyncpg.Connection) -> bool:
    """Whether TimescaleDB is there to use: installed in the database, or available and
    installable (it must be in ``shared_preload_libraries``); said in the log either way."""
    if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return True
    if not await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        log.info("history: TimescaleDB is not installed; points and log in weekly partitions")
        return False
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as exc:
        log.warning("history: TimescaleDB is available but cannot be used (%s)", exc)
        return False
    return True


async def _load(conn: asyncpg.Connection) -> Loaded:
    devices: dict[Device, int] = {
        (pk, dn): row_id
        for row_id, pk, dn in await conn.fetch(
            "SELECT id, product_key, device_name FROM history_devices"
        )
    }
    names = {row_id: device for device, row_id in devices.items()}
    series: dict[Device, dict[str, tuple[int, str]]] = {}
    for row_id, device_id, identifier, kind in await conn.fetch(
        "SELECT id, device_id, identifier, kind FROM history_series"
    ):
        series.setdefault(owner(names, device_id), {})[identifier] = (row_id, kind)
    taken = await conn.fetch(
        "SELECT device_id, key FROM history_taken "
        "WHERE ts >= (SELECT max(ts) FROM history_taken) - $1 ORDER BY ts",
        TAKEN_WINDOW_MS,
    )
    return Loaded(
        devices=devices,
        series=series,
        taken=[(owner(names, device_id), bytes(key)) for device_id, key in taken],
        through=await sql_rollups.marks(conn),
        retention={
            pk: Retention(raw_days=raw, rollup_days=rolled)
            for pk, raw, rolled in await conn.fetch("SELECT * FROM history_retention")
        },
    )


async def _partitions(conn: sql_rollups.Conn) -> set[tuple[str, int]]:
    """The partitions of the tables partitioned by time: (table, week index)."""
    found: set[tuple[str, int]] = set()
    for table in TIMED:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass($1)",
            table,
        )
        for (name,) in rows:
            suffix = name.removeprefix(f"{table}_p")
            if suffix.lstrip("-").isdigit():
                found.add((table, int(suffix)))
    return found
