"""``python -m bench.backtest``: a backtest of one simple WHERE rule over a SQLite history of a
million values (issue 14: "over 1 million stored values in seconds").

The history (in a temporary directory) is filled through its own write path (``add_points``,
the pipeline's call, and ``committed``): ``--devices`` devices x ``--posts`` posts x four
properties, the posts a second apart, each device's a few ms after the one before. Then one
``Backtester.run`` over the whole range, through the same sources as the live engine
(``$things`` streams and Alibaba's rule data), with its rate limit high enough to let every
match fire. Printed: values, seconds, values a second, for the replay alone and for the
backtest (replay + rule), and the fires found; then a scene's backtest over the same range
(``SceneBacktester``: PM2.5 over 75 held two seconds, on every station, on the recorded
clock) and the runs found; then an alarm condition's backtest over the same range
(``ConditionBacktester``: PM2.5 over 75 held two seconds raises, under 50 clears) and the
alarms found.

    python -m bench.backtest                              # 1,000 x 250 x 4 = 1,000,000 values
    python -m bench.backtest --devices 100 --posts 25     # a smoke run: 10,000 values
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

import msgspec

from hongshan.dialects.alink.rule_data import AlibabaRuleData
from hongshan.rules.alarm_conditions import AlarmConditionSpec, StoredAlarmCondition, Tags
from hongshan.rules.definition import RuleSpec
from hongshan.rules.scene import SceneSpec
from hongshan.services.alarms.condition_backtest import ConditionBacktester
from hongshan.services.rules.backtest import Backtester
from hongshan.services.rules.sources import PlatformStreams
from hongshan.services.scenes.backtest import SceneBacktester
from hongshan.store.history.sqlite import SQLiteHistory

PRODUCT = "a1BenchAir"
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
PROPERTIES = ("PM25", "PM10", "Temperature", "Humidity")
RULE = RuleSpec(
    name="bench",
    sql=(
        "SELECT deviceName() AS station, values.PM25 AS pm25 "
        f'FROM "$things/{PRODUCT}/+/properties" WHERE values.PM25 > 75'
    ),
    max_per_second=100_000,
)
SCENE = msgspec.convert(
    {
        "name": "bench",
        "triggers": [
            {
                "type": "threshold",
                "device": {"productKey": PRODUCT},
                "property": "PM25",
                "op": ">",
                "value": 75,
                "forSeconds": 2,
            }
        ],
        "actions": [{"type": "republish", "topic": "bench/dirty"}],
        "mode": "parallel",
        "max": 100,
    },
    SceneSpec,
)

CONDITION = StoredAlarmCondition(
    id=1,
    spec=msgspec.convert(
        {
            "productKey": PRODUCT,
            "type": "DirtyAir",
            "create": [
                {
                    "severity": "major",
                    "predicates": [{"property": "PM25", "op": ">", "value": 75}],
                    "kind": "duration",
                    "forMs": 2000,
                }
            ],
            "clear": {"predicates": [{"property": "PM25", "op": "<", "value": 50}]},
        },
        AlarmConditionSpec,
    ),
    created_at=0,
    updated_at=0,
)


async def no_tags(product_key: str, device_name: str) -> Tags:
    return Tags()


async def fill(history: SQLiteHistory, devices: int, posts: int) -> int:
    """Every device's posts, a post of each device at a time, committed every 50,000 values."""
    count = 0
    for post in range(posts):
        for device in range(devices):
            ts = T0 + post * 1000 + device
            values = (post * 7 + device) % 100, post % 150, 20.5 + device % 10, 40 + post % 50
            history.add_points(
                (PRODUCT, f"station-{device:05d}"),
                [(name, ts, value) for name, value in zip(PROPERTIES, values, strict=True)],
            )
            count += len(values)
        if count % 50_000 < devices * len(PROPERTIES):
            await history.committed()
    await history.committed()
    return count


async def main(devices: int, posts: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as place:
        loop = asyncio.get_running_loop()
        history = SQLiteHistory(Path(place) / "history.db", loop=loop)
        try:
            started = time.perf_counter()
            values = await fill(history, devices, posts)
            print(f"filled {values:,} values in {time.perf_counter() - started:.1f} s")
            end = T0 + posts * 1000 + devices
            started = time.perf_counter()
            replayed = 0
            async for chunk in history.replay(T0, end):
                replayed += sum(len(getattr(uplink, "values", ())) for uplink in chunk)
            seconds = time.perf_counter() - started
            print(f"replay:   {replayed:,} values in {seconds:.2f} s, {replayed / seconds:,.0f}/s")
            sources = (PlatformStreams(), AlibabaRuleData(lambda _pk: None, lambda _p, _d: True))
            backtester = Backtester(history, sources)
            started = time.perf_counter()
            found = await backtester.run(RULE, T0, end, limit=10)
            seconds = time.perf_counter() - started
            print(
                f"backtest: {found.values:,} values in {seconds:.2f} s, "
                f"{found.values / seconds:,.0f}/s; {found.rule.matched:,} posts matched, "
                f"{found.rule.fired:,} would fire"
            )
            stations = [(PRODUCT, f"station-{device:05d}") for device in range(devices)]

            async def members(group: str) -> list[tuple[str, str]]:
                return []

            scenes = SceneBacktester(
                history, zone=dt.UTC, place=None, members=members, devices_of=lambda _: stations
            )
            started = time.perf_counter()
            scened = await scenes.run(SCENE, T0, end, limit=10)
            seconds = time.perf_counter() - started
            print(
                f"scene:    {scened.values:,} values in {seconds:.2f} s, "
                f"{scened.values / seconds:,.0f}/s; {scened.scene.ran:,} would run"
            )
            conditions = ConditionBacktester(history, tags=no_tags, devices_of=lambda _: stations)
            started = time.perf_counter()
            alarmed = await conditions.run(CONDITION, T0, end, limit=10)
            seconds = time.perf_counter() - started
            tally = alarmed.condition
            print(
                f"alarm:    {alarmed.values:,} values in {seconds:.2f} s, "
                f"{alarmed.values / seconds:,.0f}/s; {tally.raised:,} would raise, "
                f"{tally.cleared:,} clear"
            )
        finally:
            await history.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--posts", type=int, default=250)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.devices, arguments.posts))
