"""The PostgreSQL side of the rollups (``rollups`` says what they are): their tables, a pass as
a few set-based statements over the runs it owes (given as arrays, ``unnest``-ed), the recovery
after a crash, and the aggregate queries that read them or the points.

A value is a number (``num``: numbers and booleans) or text (``txt``: text, and structs and
arrays as JSON); a rollup's first and last keep both, and their times as offsets into the
bucket. ``min``, ``max`` and ``sum`` are of the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from hongshan.store.history.model import Buckets
from hongshan.store.history.rollups import (
    LOWEST,
    ROLLUP_TABLES,
    Pass,
    Piece,
    TownDays,
    asked_of_pieces,
    compose,
    day_runs_of_hours,
    fold_calendar,
    minute_key,
    recovery_pass,
    rolled_runs,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # a connection of its own or one lent by the pool
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {} (
    series_id integer NOT NULL, bucket bigint NOT NULL,
    count bigint NOT NULL, sum double precision, min double precision, max double precision,
    first_at bigint NOT NULL, first_num double precision, first_txt text,
    last_at bigint NOT NULL, last_num double precision, last_txt text,
    PRIMARY KEY (series_id, bucket)
);
"""
SCHEMA = (
    "".join(_ROLLUP_TABLE.format(table) for table in ROLLUP_TABLES)
    + """
CREATE TABLE IF NOT EXISTS history_dirty (
    series_id integer NOT NULL, bucket bigint NOT NULL, pass bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, bucket)
);
ALTER TABLE history_dirty ADD COLUMN IF NOT EXISTS pass bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS history_rolled (
    series_id integer PRIMARY KEY, through bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS history_meta (key text PRIMARY KEY, value text);
"""
)

# a later note of the same minute names a later pass
INSERT_DIRTY = (
    "INSERT INTO history_dirty VALUES ($1, $2, $3) "
    "ON CONFLICT (series_id, bucket) DO UPDATE SET pass = greatest(history_dirty.pass, $3)"
)
SET_META = "INSERT INTO history_meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2"
_RUNS = "unnest($1::integer[], $2::bigint[], $3::bigint[]) AS r(s, lo, hi)"
_REPLACE = " ON CONFLICT (series_id, bucket) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}"
    for c in (
        "count", "sum", "min", "max", "first_at", "first_num", "first_txt", "last_at",
        "last_num", "last_txt",
    )
)  # fmt: skip
# First and last: a number's as the least and greatest [time, number] array (one cheap
# comparison a row: array_agg(… ORDER BY …) sorts every group, four times over), a text's by
# sorting, which only text rows pay for; each is its group's first or last only if its time is
# the group's.
_EDGES = """
    {t0} - b, CASE WHEN fn[1] = {t0} THEN fn[2] END, CASE WHEN ft_at = {t0} THEN ft END,
    {t1} - b, CASE WHEN ln[1] = {t1} THEN ln[2] END, CASE WHEN lt_at = {t1} THEN lt END
"""
_EDGE_AGGREGATES = """
    min(ARRAY[{first_at}, {first_num}]) FILTER (WHERE {first_num} IS NOT NULL) AS fn,
    max(ARRAY[{last_at}, {last_num}]) FILTER (WHERE {last_num} IS NOT NULL) AS ln,
    min({first_at}) FILTER (WHERE {first_txt} IS NOT NULL) AS ft_at,
    (array_agg({first_txt} ORDER BY {first_at}) FILTER (WHERE {first_txt} IS NOT NULL))[1] AS ft,
    max({last_at}) FILTER (WHERE {last_txt} IS NOT NULL) AS lt_at,
    (array_agg({last_txt} ORDER BY {last_at} DESC) FILTER (WHERE {last_txt} IS NOT NULL))[1]
        AS lt
"""
# a minute's first and last times are those of its edge values (every point has a number or a
# text): two aggregates a point fewer than min(ts) and max(ts) beside them
_NEW_MINUTES_FROM_POINTS = f"""
INSERT INTO history_minutes
SELECT s, b, n, sm, mn, mx, {_EDGES.format(t0="t0", t1="t1")}
FROM (
    SELECT *, least(fn[1]::bigint, ft_at) AS t0, greatest(ln[1]::bigint, lt_at) AS t1 FROM (
        SELECT r.s, p.ts - p.ts % 60000 AS b, count(*) AS n, sum(p.num) AS sm,
            min(p.num) AS mn, max(p.num) AS mx,
            {_EDGE_AGGREGATES.format(
                first_at="p.ts", first_num="p.num", first_txt="p.txt",
                last_at="p.ts", last_num="p.num", last_txt="p.txt",
            )}
        FROM {_RUNS}
        JOIN history_points AS p ON p.series_id = r.s AND p.ts >= r.lo AND p.ts < r.hi
        GROUP BY r.s, b
    ) AS a
) AS g
"""  # fmt: skip
# minutes that may have a row already (a plain INSERT of new ones skips the search for it)
_MINUTES_FROM_POINTS = _NEW_MINUTES_FROM_POINTS + _REPLACE
_FROM_ROLLUP = (
    """
INSERT INTO {into}
SELECT s, b, n, sm, mn, mx, """
    + _EDGES.format(t0="t0", t1="t1")
    + """
FROM (
    SELECT r.s, {bucket} AS b, sum(u.count)::bigint AS n, sum(u.sum) AS sm, min(u.min) AS mn,
        max(u.max) AS mx, min(u.bucket + u.first_at) AS t0, max(u.bucket + u.last_at) AS t1,
        """
    + _EDGE_AGGREGATES.format(
        first_at="u.bucket + u.first_at",
        first_num="u.first_num",
        first_txt="u.first_txt",
        last_at="u.bucket + u.last_at",
        last_num="u.last_num",
        last_txt="u.last_txt",
    )
    .replace("{", "{{")
    .replace("}", "}}")
    + """
    FROM {runs}
    JOIN {source} AS u ON u.series_id = r.s AND u.bucket >= r.lo AND u.bucket < r.hi
    GROUP BY r.s, b
) AS g
{replace}
"""
)
_HOURS_FROM_MINUTES = _FROM_ROLLUP.format(
    into="history_hours",
    bucket="u.bucket - u.bucket % 3600000",
    runs=_RUNS,
    source="history_minutes",
    replace=_REPLACE,
)
# the town's days, from their hours where a day's start and end fall on whole hours of UTC,
# else from their minutes
_DAYS_FROM_HOURS, _DAYS_FROM_MINUTES = (
    _FROM_ROLLUP.format(
        into="history_days", bucket="r.lo", runs=_RUNS, source=source, replace=_REPLACE
    )
    for source in ("history_hours", "history_minutes")
)
# A pass's notes settled: those of its share of the series (``Pass.share``: ids of remainder
# $3 of $2) up to its number, whose minutes it or a backlog pass before it recomputed (a note
# is made with its value, its minute owed to the next pass taken). A note the writer holds is
# passed over, not waited for: the writer's transaction may hold several in any order (one
# flush's are in key order, a batch of flushes' are not), and waiting could deadlock; what the
# writer holds is a note for a later pass, which that one settles.
_DELETE_DIRTY = """
DELETE FROM history_dirty AS d USING (
    SELECT series_id, bucket FROM history_dirty WHERE pass <= $1 AND series_id % $2 = $3
    FOR UPDATE SKIP LOCKED
) AS n
WHERE d.series_id = n.series_id AND d.bucket = n.bucket
"""
_SET_ROLLED = """
INSERT INTO history_rolled SELECT * FROM unnest($1::integer[], $2::bigint[])
ON CONFLICT (series_id) DO UPDATE SET through = EXCLUDED.through
"""

Parts = list[tuple[str, Sequence[Sequence[Any]]]]


def _arrays(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one array per column (the parameters of an ``unnest``)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def pass_parts(plan: Pass, days: TownDays) -> Parts:
    """The minutes recomputed from their points, then the pass's hours from their minutes and
    its days from their hours (or minutes), the notes on disk it settles, the marks moved up;
    each one statement over arrays."""
    old_runs, new_runs = plan.split()
    hour_runs, day_runs = rolled_runs(plan.hours, plan.days, days)
    from_hours = [run[:3] for run in day_runs if run[3]]
    from_minutes = [run[:3] for run in day_runs if not run[3]]
    parts: Parts = []
    for sql, rows, width in (
        (_MINUTES_FROM_POINTS, old_runs, 3),
        (_NEW_MINUTES_FROM_POINTS, new_runs, 3),
        (_HOURS_FROM_MINUTES, hour_runs, 3),
        (_DAYS_FROM_HOURS, from_hours, 3),
        (_DAYS_FROM_MINUTES, from_minutes, 3),
        (_SET_ROLLED, sorted(plan.marks.items()), 2),
    ):
        if rows:
            parts.append((sql, [_arrays(rows, width)]))
    if plan.number is not None:
        parts.append((_DELETE_DIRTY, [(plan.number, plan.share[1], plan.share[0])]))
    return parts


async def run_parts(conn: Conn, parts: Parts) -> None:
    """Parts run here rather than by the writer (at open), in one transaction."""
    async with conn.transaction():
        for sql, rows in parts:
            await conn.executemany(sql, rows)


async def marks(conn: Conn) -> dict[int, int]:
    """Each series' mark: how far its rollups are complete."""
    rows = await conn.fetch("SELECT series_id, through FROM history_rolled")
    return {row[0]: row[1] for row in rows}


async def marks_are_latest(conn: Conn) -> bool:
    """Whether every series' mark is at least its latest minute written (``Rollups.written``);
    made so, once, where it was not (a store from before marks stopped moving down, whose
    passes each set the marks to their own latest minutes). False when it was made so now."""
    if await conn.fetchval("SELECT value FROM history_meta WHERE key = 'marks'") == "latest":
        return True
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO history_rolled SELECT series_id, max(bucket) FROM history_minutes "
            "GROUP BY series_id ON CONFLICT (series_id) "
            "DO UPDATE SET through = greatest(history_rolled.through, EXCLUDED.through)"
        )
        await conn.execute(SET_META, "marks", "latest")
    return False


async def recover(conn: Conn, days: TownDays) -> None:
    """At open after a crash: recompute what the lost passes would have."""
    through = await marks(conn)
    found = await conn.fetch(
        "SELECT DISTINCT p.series_id, p.ts - p.ts % 60000 FROM history_points AS p "
        "LEFT JOIN history_rolled AS r ON r.series_id = p.series_id "
        "WHERE p.ts >= coalesce(r.through, $1) "
        "UNION SELECT series_id, bucket FROM history_dirty",
        LOWEST,
    )
    owed = {minute_key(series_id, minute) for series_id, minute in found}
    if owed:
        await run_parts(conn, pass_parts(recovery_pass(owed, through), days))


async def rebuild_days(conn: Conn, days: TownDays) -> None:
    """The day rollups made again for every day that has values (the zone changed)."""
    hours = await conn.fetch("SELECT series_id, bucket FROM history_hours")
    owed = day_runs_of_hours(((s, b) for s, b in hours), days)
    parts: Parts = [("DELETE FROM history_days", [()])]
    for sql, rows in (
        (_DAYS_FROM_HOURS, [run[:3] for run in owed if run[3]]),
        (_DAYS_FROM_MINUTES, [run[:3] for run in owed if not run[3]]),
    ):
        if rows:
            parts.append((sql, [_arrays(rows, 3)]))
    parts.append((SET_META, [("day_zone", days.name)]))
    await run_parts(conn, parts)


def stored(num: Any, txt: Any) -> Any:
    """A value as read: its text if it has one, else its number."""
    return txt if txt is not None else num


class _Source:
    """Where an aggregate reads from: the raw points or a rollup table."""

    def __init__(self, table: str) -> None:
        self.table = table
        if table != "history_points":
            self.time = "bucket"
            self.plain = (
                "sum(count)::bigint, sum(sum) / sum(count)::float8, min(min), max(max), sum(sum)"
            )
            # (the order that puts it first, its number, its text)
            self.first = ("bucket + first_at", "first_num", "first_txt")
            self.last = ("bucket + last_at DESC", "last_num", "last_txt")
        else:
            self.time = "ts"
            self.plain = "count(*), avg(num), min(num), max(num), sum(num)"
            self.first, self.last = ("ts", "num", "txt"), ("ts DESC", "num", "txt")


async def composed(
    conn: Conn, ids: list[int], pieces: list[Piece], aggregates: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """An aggregate over the parts of its range that ``rollups.plan`` chose, merged per
    bucket (``rollups.compose``); a range one table answers is read as it is."""
    if len(pieces) == 1:
        return await aggregate(conn, ids, pieces[0].buckets, aggregates, pieces[0].table)
    asked = asked_of_pieces(aggregates)
    answers = [await aggregate(conn, ids, p.buckets, asked, p.table) for p in pieces]
    return compose(answers, aggregates)


async def aggregate(
    conn: Conn,
    ids: list[int],
    buckets: Buckets,
    aggregates: Sequence[str],
    table: str,
) -> dict[int, dict[str, Any]]:
    """Per bucket start: the asked aggregates of the series ``ids`` together, read from
    ``table`` (``rollups.level``'s choice)."""
    source = _Source(table)
    if source.time == "bucket" and not buckets.width:
        return await _fold_calendar(conn, ids, buckets, aggregates, table)
    at = source.time
    if buckets.width:
        bucket = f"{at} - (({at} - $1) % $2)"
        where = f"FROM {table} WHERE series_id = ANY($3::integer[]) AND {at} >= $4 AND {at} < $5"
        params: list[Any] = [buckets.origin, buckets.width, ids, buckets.start, buckets.end]
    else:
        bounds = buckets.bounds
        starts = list(bounds[:-1])
        lows = [max(b, buckets.start) for b in bounds[:-1]]
        highs = [min(b, buckets.end) for b in bounds[1:]]
        bucket = "r.b"
        where = (
            f"FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS r(b, lo, hi) "
            f"JOIN {table} ON series_id = ANY($4::integer[]) AND {at} >= r.lo AND {at} < r.hi"
        )
        params = [starts, lows, highs, ids]
    results: dict[int, dict[str, Any]] = {}
    plain = [a for a in aggregates if a not in ("first", "last")]
    if plain:
        sql = f"SELECT {bucket} AS b, {source.plain} {where} GROUP BY 1"
        for b, count, avg, low, high, total in await conn.fetch(sql, *params):
            row = {"count": count, "avg": avg, "min": low, "max": high, "sum": total}
            results[b] = {a: row[a] for a in plain}
    for edge, (by, num, txt) in (("first", source.first), ("last", source.last)):
        if edge in aggregates:
            sql = f"SELECT DISTINCT ON (1) {bucket} AS b, {num}, {txt} {where} ORDER BY 1, {by}"
            for b, number, text in await conn.fetch(sql, *params):
                results.setdefault(b, {})[edge] = stored(number, text)
    return results


async def _fold_calendar(
    conn: Conn,
    ids: list[int],
    buckets: Buckets,
    aggregates: Sequence[str],
    table: str,
) -> dict[int, dict[str, Any]]:
    """Calendar buckets over rollups: the series' rollup rows summed per rollup bucket in one
    scan, folded into the calendar's buckets by ``fold_calendar``."""
    where = f"FROM {table} WHERE series_id = ANY($1::integer[]) AND bucket >= $2 AND bucket < $3"
    params = [ids, buckets.start, buckets.end]
    rows = await conn.fetch(
        "SELECT bucket, sum(count)::bigint, sum(sum), min(min), max(max) "
        f"{where} GROUP BY bucket ORDER BY bucket",
        *params,
    )
    edges: dict[int, tuple[Any, Any]] = {}
    if "first" in aggregates or "last" in aggregates:
        sql = "SELECT DISTINCT ON (bucket) bucket, {0}, {1} " + where + " ORDER BY bucket, {2}"
        firsts = {
            b: stored(n, t)
            for b, n, t in await conn.fetch(
                sql.format("first_num", "first_txt", "first_at"), *params
            )
        }
        lasts = {
            b: stored(n, t)
            for b, n, t in await conn.fetch(
                sql.format("last_num", "last_txt", "last_at DESC"), *params
            )
        }
        edges = {b: (firsts.get(b), lasts.get(b)) for b in firsts}
    return fold_calendar((tuple(row) for row in rows), edges, buckets.bounds, aggregates)
