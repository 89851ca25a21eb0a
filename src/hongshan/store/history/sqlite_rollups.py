"""Minute and hour rollups of the SQLite history, and the aggregate queries that read them.

``history_rollups`` holds, per series and per minute and hour, the count, sum, min, max and the
first and last values with their times. A rollup is recomputed from what is under it (the
minute from the raw points, the hour from its minutes), never adjusted by a delta: a value that
replaces another at the same millisecond, a late value from a history post and a resend all
leave it right.

Which buckets need it is known in memory (the minutes that got values since the last pass),
and for values more than ``LATE_MS`` older than the store's clock also on disk
(``history_dirty``, written with the values), so that a crash loses neither: at the next start,
the minutes with values since the last pass (less ``LATE_MS``) and the recorded late ones are
recomputed.

An aggregate reads hour rollups when its buckets and range fall on whole hours, minute rollups
when on whole minutes, and the raw points otherwise: a year of daily averages is a few
thousand rollup rows per series, not millions of points.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from hongshan.store.history.model import Bucket, Buckets

MINUTE = 60_000
HOUR = 3_600_000
LATE_MS = 5 * 60_000  # a value older than this (by the store's clock) is late: noted on disk

SCHEMA = """
CREATE TABLE IF NOT EXISTS history_rollups (
    series_id INTEGER NOT NULL, width INTEGER NOT NULL, bucket INTEGER NOT NULL,
    count INTEGER NOT NULL, sum REAL, min, max,
    first_ts INTEGER NOT NULL, first, last_ts INTEGER NOT NULL, last,
    PRIMARY KEY (series_id, width, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_dirty (
    series_id INTEGER NOT NULL, bucket INTEGER NOT NULL, PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_meta (key TEXT PRIMARY KEY, value);
"""

INSERT_DIRTY = "INSERT OR IGNORE INTO history_dirty (series_id, bucket) VALUES (?, ?)"
DELETE_DIRTY = "DELETE FROM history_dirty WHERE series_id = ? AND bucket = ?"
SET_META = "INSERT OR REPLACE INTO history_meta (key, value) VALUES (?, ?)"

_COLUMNS = "series_id, width, bucket, count, sum, min, max, first_ts, first, last_ts, last"
_IN_MINUTE = "series_id = ?1 AND ts >= ?2 AND ts < ?2 + 60000"
MINUTE_FROM_POINTS = f"""
INSERT OR REPLACE INTO history_rollups ({_COLUMNS})
SELECT ?1, 60000, ?2, count(value), sum(value), min(value), max(value),
    min(ts), (SELECT value FROM history_points WHERE {_IN_MINUTE} ORDER BY ts LIMIT 1),
    max(ts), (SELECT value FROM history_points WHERE {_IN_MINUTE} ORDER BY ts DESC LIMIT 1)
FROM history_points WHERE {_IN_MINUTE}
HAVING count(value) > 0
"""
_IN_HOUR = "series_id = ?1 AND width = 60000 AND bucket >= ?2 AND bucket < ?2 + 3600000"
HOUR_FROM_MINUTES = f"""
INSERT OR REPLACE INTO history_rollups ({_COLUMNS})
SELECT ?1, 3600000, ?2, sum(count), sum(sum), min(min), max(max),
    min(first_ts), (SELECT first FROM history_rollups WHERE {_IN_HOUR} ORDER BY bucket LIMIT 1),
    max(last_ts),
    (SELECT last FROM history_rollups WHERE {_IN_HOUR} ORDER BY bucket DESC LIMIT 1)
FROM history_rollups WHERE {_IN_HOUR}
HAVING sum(count) > 0
"""
SQL_VARIABLES = 30_000  # under SQLite's 32,766 bound parameters per statement


def recompute_parts(minutes: Iterable[tuple[int, int]], now: int) -> list[tuple[str, Any]]:
    """The statements of one rollup pass over these (series, minute) buckets: minutes, then
    their hours, then the late notes they settle, then the time of the pass."""
    minute_rows = sorted(set(minutes))
    hour_rows = sorted({(series, minute - minute % HOUR) for series, minute in minute_rows})
    return [
        (MINUTE_FROM_POINTS, minute_rows),
        (HOUR_FROM_MINUTES, hour_rows),
        (DELETE_DIRTY, minute_rows),
        (SET_META, [("rolled_up_at", now)]),
    ]


def owed_minutes(conn: sqlite3.Connection, series_ids: Iterable[int]) -> list[tuple[int, int]]:
    """At start after a crash: the minutes a pass may not have reached. Those with values since
    the last pass (less ``LATE_MS``), and the late ones noted on disk."""
    row = conn.execute("SELECT value FROM history_meta WHERE key = 'rolled_up_at'").fetchone()
    since = (row[0] - LATE_MS) if row else None
    owed = set(conn.execute("SELECT series_id, bucket FROM history_dirty"))
    sql = "SELECT DISTINCT ts - ts % 60000 FROM history_points WHERE series_id = ? AND ts >= ?"
    for series_id in series_ids:
        for (minute,) in conn.execute(sql, (series_id, since if since is not None else -(2**62))):
            owed.add((series_id, minute))
    return sorted(owed)


def level(buckets: Buckets) -> int:
    """The coarsest rollup whose buckets tile the question exactly, or 0 for the raw points."""
    edges = [buckets.start, buckets.end]
    if buckets.width:
        edges += [buckets.width, buckets.origin]
    else:
        edges += buckets.bounds
    for width in (HOUR, MINUTE):
        if all(edge % width == 0 for edge in edges):
            return width
    return 0


class _Source:
    """Where an aggregate reads from: the raw points or one width of the rollups."""

    def __init__(self, width: int) -> None:
        self.width = width
        if width:
            self.table, self.time = "history_rollups", "bucket"
            self.where, self.params = " AND width = ?", [width]
            self.plain = "sum(count), sum(sum) / sum(count), min(min), max(max), sum(sum)"
            self.first, self.last = "min(first_ts), first", "max(last_ts), last"
        else:
            self.table, self.time = "history_points", "ts"
            self.where, self.params = "", []
            self.plain = "count(value), avg(value), min(value), max(value), sum(value)"
            self.first, self.last = "min(ts), value", "max(ts), value"


def aggregate(
    conn: sqlite3.Connection,
    ids: list[int],
    buckets: Buckets,
    aggregates: Sequence[str],
) -> dict[int, dict[str, Any]]:
    """Per bucket start: the asked aggregates of the series ``ids`` together, from the rollups
    where they tile the buckets, else from the points. First and last each take one more scan
    (SQLite gives a bare column the value of the row that ``min``/``max`` picked)."""
    source = _Source(level(buckets))
    at = source.time
    series = f"series_id IN ({','.join('?' * len(ids))}){source.where}"
    if buckets.width:
        chunks: list[tuple[str, list[Any]]] = [
            (
                f"SELECT {at} - (({at} - ?) % ?) AS b, {{columns}} FROM {source.table} "
                f"WHERE {series} AND {at} >= ? AND {at} < ? GROUP BY b",
                [buckets.origin, buckets.width, *ids, *source.params, buckets.start, buckets.end],
            )
        ]
    else:
        chunks = []
        bounds = buckets.bounds
        per_chunk = max(1, (SQL_VARIABLES - len(ids)) // 3)
        for first in range(0, len(bounds) - 1, per_chunk):
            part = range(first, min(first + per_chunk, len(bounds) - 1))
            values: list[Any] = []
            for i in part:
                lo, hi = max(bounds[i], buckets.start), min(bounds[i + 1], buckets.end)
                values += [bounds[i], lo, hi]
            chunks.append(
                (
                    f"WITH bucket(b, lo, hi) AS (VALUES {','.join(['(?, ?, ?)'] * len(part))}) "
                    f"SELECT bucket.b AS b, {{columns}} FROM bucket JOIN {source.table} "
                    f"ON {series} AND {at} >= bucket.lo AND {at} < bucket.hi GROUP BY bucket.b",
                    [*values, *ids, *source.params],
                )
            )
    results: dict[int, dict[str, Any]] = {}
    plain = [a for a in aggregates if a not in ("first", "last")]
    for template, params in chunks:
        if plain:
            for b, count, avg, low, high, total in conn.execute(
                template.format(columns=source.plain), params
            ):
                row = {"count": count, "avg": avg, "min": low, "max": high, "sum": total}
                results[b] = {a: row[a] for a in plain}
        for edge, columns in (("first", source.first), ("last", source.last)):
            if edge in aggregates:
                for b, _, value in conn.execute(template.format(columns=columns), params):
                    results.setdefault(b, {})[edge] = value
    return results


def to_buckets(results: dict[int, dict[str, Any]], decode: Any) -> list[Bucket]:
    """Buckets in time order, their first/last/min/max decoded as the series' kind says."""
    for found in results.values():
        for name in ("min", "max", "first", "last"):
            if found.get(name) is not None:
                found[name] = decode(found[name])
    return [Bucket(start=b, values=results[b]) for b in sorted(results)]
