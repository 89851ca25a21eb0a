"""The SQLite history's small reads — a page of values, an aggregate off the rollups — are made
on the event loop; a large one is handed to a thread (``SQLiteHistory._read``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hongshan.store.history.buckets import buckets
from hongshan.store.history.sqlite import SMALL_READ_ROWS, SQLiteHistory

LAMP = ("a1Lamp", "lamp-1")
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
HOUR = 3_600_000


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to it."""

    handed = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


async def test_small_reads_stay_on_the_loop_and_large_ones_go_to_a_thread(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    history = SQLiteHistory(tmp_path / "history.db", loop=loop)
    every_10s = [("PM25", T0 + i * 10_000, i % 50) for i in range(3 * 360)]  # three hours
    history.add_points(LAMP, every_10s)
    await history.committed()
    executor = CountingExecutor(2)
    loop.set_default_executor(executor)
    try:
        page = await history.points(LAMP, "PM25", T0, T0 + 3 * HOUR, limit=100)
        assert len(page.points) == 100 and executor.handed == 0
        # two hours off the hour, hourly: minutes, then an hour, on the loop
        off = T0 + HOUR + 12_345
        found = await history.aggregate([LAMP], "PM25", buckets(off, T0 + 3 * HOUR, "1h"), ["avg"])
        assert len(found) == 2 and executor.handed == 0
        # every value of three hours, one by one: more rows than a small read
        assert len(every_10s) > SMALL_READ_ROWS / 2
        raw = buckets(T0, T0 + 3 * HOUR, "1s")
        await history.aggregate([LAMP], "PM25", raw, ["count"])
        big = await history.points(LAMP, "PM25", T0, T0 + 3 * HOUR, limit=SMALL_READ_ROWS + 1)
        assert len(big.points) == len(every_10s) and executor.handed == 2
    finally:
        await history.close()
