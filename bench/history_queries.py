"""``python -m bench.history_queries``: query latency over a history of 100 million values.

The data set, built once through the store's ``add_points`` (as the pipeline writes) and kept
for later runs, in ``--dir`` (SQLite) or, with ``--postgres URL``, in that database's schema
``hongshan_history_bench``: 1,000 air stations in 10 districts, one PM2.5 value every 10 s
each for 12 days up to now (103,680,000 values), with the store's own minute and hour rollups.
Building it takes a while (about 15 minutes at 120,000 values/s); later runs reuse it.

Then, each timed ``--runs`` times on a warm file (the median is printed, and the slowest):

- one station's hourly average over 30 days (the hour rollups);
- every district's daily average over a year, in Asia/Shanghai's days (the town's time zone,
  so the day rollups of 100 stations per district);
- one station's raw values, a page of 1,000;
- the latest PM2.5 of 10,000 devices through ``GET /api/history/latest`` of a running platform
  (the registry's places and the in-memory twin, over HTTP, asked by a client in a process of
  its own; the time includes receiving the 1.3 MB answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hongshan.app import running, tune_gc
from hongshan.config import Settings
from hongshan.store.history.buckets import buckets
from hongshan.store.history.postgres import PostgresHistory
from hongshan.store.history.sqlite import SQLiteHistory

STATIONS = 1000
DISTRICTS = 10
EVERY_MS = 10_000
DAY_MS = 86_400_000
PRODUCT = "a1AirStation"
SCHEMA = "hongshan_history_bench"
TOWN = "Asia/Shanghai"  # the town's time zone: its days are the history's day rollups


def station(i: int) -> tuple[str, str]:
    return PRODUCT, f"air-{i:04d}"


async def opened(where: str) -> SQLiteHistory | PostgresHistory:
    """The history at ``where``: a PostgreSQL URL, or a SQLite file's path."""
    if where.startswith("postgresql://"):
        return await PostgresHistory.open(where, time_zone=TOWN)
    return SQLiteHistory(where, loop=asyncio.get_running_loop(), time_zone=TOWN)


async def build(where: str, days: int) -> float:
    """Fill the history at ``where`` with the data set; returns values per second."""
    history = await opened(where)
    end = int(time.time() * 1000)
    end -= end % EVERY_MS
    start = end - days * DAY_MS
    devices = [station(i) for i in range(STATIONS)]
    began = time.perf_counter()
    count = 0
    for ts in range(start, end, EVERY_MS):
        for i, device in enumerate(devices):
            history.add_points(device, [("PM25", ts, 20 + (i * 7 + ts // EVERY_MS) % 60)])
        count += STATIONS
        if count % 100_000 == 0:
            await asyncio.sleep(0)
            if count % 10_000_000 == 0:
                print(f"  {count:,} values", flush=True)
                await history.committed()
    await history.committed()
    await history.close()
    return count / (time.perf_counter() - began)


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float, Any]:
    await fn()  # warm
    took = []
    result = None
    for _ in range(runs):
        began = time.perf_counter()
        result = await fn()
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took), max(took), result


async def store_queries(
    where: str, runs: int, days: int
) -> list[tuple[str, float, float, str, float]]:
    history = await opened(where)
    now = int(time.time() * 1000)
    hour_now = now - now % 3_600_000 + 3_600_000
    month = buckets(hour_now - 30 * DAY_MS, hour_now, "1h")
    today = hour_now - (hour_now + 8 * 3_600_000) % DAY_MS + DAY_MS  # Shanghai's next midnight
    year = buckets(today - 365 * DAY_MS, today, "1d", TOWN)
    districts = [
        [station(i) for i in range(STATIONS) if i % DISTRICTS == d] for d in range(DISTRICTS)
    ]

    async def hourly() -> Any:
        return await history.aggregate([station(7)], "PM25", month, ["avg"])

    async def per_district() -> Any:
        return [await history.aggregate(ds, "PM25", year, ["avg"]) for ds in districts]

    async def raw_page() -> Any:
        return await history.points(station(7), "PM25", now - DAY_MS, now, limit=1000)

    rows = []
    median, slowest, found = await timed(hourly, runs)
    rows.append(("hourly average of one station over 30 days", median, slowest, "< 20 ms", 20))
    assert len(found) >= days * 24, len(found)
    median, slowest, found = await timed(per_district, runs)
    rows.append(
        ("daily average per district over a year (10 x 100)", median, slowest, "< 100 ms", 100)
    )
    assert len(found) == DISTRICTS and all(len(daily) >= days for daily in found)
    median, slowest, found = await timed(raw_page, runs)
    rows.append(("one station's raw values, a page of 1,000", median, slowest, "", 0))
    assert len(found.points) == 1000
    await history.close()
    return rows


async def latest_query(runs: int) -> tuple[str, float, float, str, float]:
    """10,000 devices with a latest value each, asked for over HTTP."""
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        settings = Settings(
            data_dir=where, host="127.0.0.1", mqtt_port=0, http_port=0, sys_interval=0
        )
        async with running(settings) as platform:
            tune_gc()  # as ``hongshan serve`` does once started
            product = await platform.registry.create_product("Air", product_key=PRODUCT)
            names = [f"dev-{i:05d}" for i in range(10_000)]
            await platform.registry.create_devices(product.product_key, names)
            now = int(time.time() * 1000)
            platform.twin.restore(
                {(PRODUCT, n): {"PM25": (i % 80, now)} for i, n in enumerate(names)}
            )
            url = f"http://127.0.0.1:{platform.ports['http']}/api/history/latest"
            # the client in a process of its own: its parsing of 10,000 answers is not ours
            client = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CLIENT,
                url,
                platform.admin_token,
                str(runs),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await client.communicate()
    took, found = json.loads(out)
    median, slowest = statistics.median(took), max(took)
    assert found == 10_000, found
    return ("latest value of 10,000 devices (REST)", median, slowest, "< 50 ms", 50)


_CLIENT = """
import json, sys, time, httpx
url, token, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
params = {"productKey": "a1AirStation", "identifier": "PM25"}
took = []
with httpx.Client(headers={"Authorization": "Bearer " + token}, timeout=30) as client:
    for n in range(runs + 1):
        began = time.perf_counter()
        answer = client.get(url, params=params)
        answer.raise_for_status()
        if n:  # the first warms
            took.append((time.perf_counter() - began) * 1000)
print(json.dumps([took, len(answer.json())]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/hongshan-history-bench")
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to measure on")
    options = parser.parse_args()
    if options.postgres:
        joiner = "&" if "?" in options.postgres else "?"
        where = f"{options.postgres}{joiner}search_path={SCHEMA}"
        built, size = asyncio.run(_postgres_state(options.postgres))
    else:
        directory = Path(options.dir)
        directory.mkdir(parents=True, exist_ok=True)
        where = str(directory / "history.db")
        built = Path(where).exists()
    if not built:
        print(f"building {STATIONS * options.days * DAY_MS // EVERY_MS:,} values in {where} …")
        rate = asyncio.run(build(where, options.days))
        print(f"built at {rate:,.0f} values/s")
    if options.postgres:
        _, size = asyncio.run(_postgres_state(options.postgres))
    else:
        size = sum(f.stat().st_size for f in Path(options.dir).glob("history.db*"))
    rows = asyncio.run(store_queries(where, options.runs, options.days))
    rows.append(asyncio.run(latest_query(options.runs)))
    print(f"\n{where}: {size / 1e9:.2f} GB; median and slowest of {options.runs} runs\n")
    print("| query | median ms | slowest ms | target | |")
    print("|---|---:|---:|---|---|")
    for name, median, slowest, target, limit in rows:
        ok = "" if not limit else ("✅" if median < limit else "❌")
        print(f"| {name} | {median:.1f} | {slowest:.1f} | {target} | {ok} |")


async def _postgres_state(url: str) -> tuple[bool, int]:
    """Whether the data set is built in the schema (made if missing), and its size in bytes."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        built = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.history_rolled"
        ) and await conn.fetchval(f"SELECT count(*) > 0 FROM {SCHEMA}.history_rolled")
        size = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind = 'r'",
            SCHEMA,
        )
    finally:
        await conn.close()
    return bool(built), int(size)


if __name__ == "__main__":
    main()
