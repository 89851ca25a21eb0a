"""``python -m bench.scenes_uplink``: what the scene engine costs a property post, in-process.

``--scenes`` scenes each watch every device of one product with a threshold held for a minute
(a hold per device), ``--devices`` devices of that product post values that cross the
threshold one way and back, ``--posts`` of them; the figure is posts heard a second
(``SceneEngine.on_uplink``), the median of five runs. No broker, bus or store: the history
answers nothing (no state to resume), the timers are only kept (no hold completes), so what is
measured is the engine's index and its state machines.

Full size: ``python -m bench.scenes_uplink --scenes 100 --devices 1000 --posts 200000``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import msgspec

from hongshan.messages import DeviceRef, PropertyValues
from hongshan.rules.scene import SceneSpec, StoredScene
from hongshan.services.rules.running import ActionNeeds
from hongshan.services.scenes.engine import SceneEngine
from hongshan.services.scenes.running import build_scene
from hongshan.store.history.model import PointPage

PRODUCT = "a1BenchLux"
NO_ACTIONS = cast(ActionNeeds, None)  # (the scenes have no actions to build)


class Kept:
    def cancel(self) -> None:
        pass


class KeptClock:
    """Now is the wall clock; calls are kept and never made."""

    def now(self) -> int:
        return int(time.time() * 1000)

    def call_at(self, at: int, callback: Callable[[], None]) -> Kept:
        return Kept()


class NoHistory:
    async def points(self, *args: Any, **kwargs: Any) -> PointPage:
        return PointPage(points=[], next=None)

    async def latest_values(self) -> dict[tuple[str, str], dict[str, tuple[Any, int]]]:
        return {}

    async def add_wait(self, *args: Any) -> int:
        return 0

    async def drop_wait(self, wait_id: int) -> None:
        pass


async def _members(group: str) -> list[tuple[str, str]]:
    return []


def scene(number: int) -> StoredScene:
    spec = msgspec.convert(
        {
            "name": f"scene {number}",
            "triggers": [
                {
                    "type": "threshold",
                    "device": {"productKey": PRODUCT},
                    "property": "Illuminance",
                    "op": "<",
                    "value": 20 + number % 10,
                    "forSeconds": 60,
                }
            ],
        },
        SceneSpec,
    )
    return StoredScene(id=number, spec=spec, secret="", token="", created_at=0, updated_at=0)


async def one_run(scenes: int, devices: int, posts: int) -> float:
    history = NoHistory()
    names = [(PRODUCT, f"lux-{n:05d}") for n in range(devices)]
    engine = SceneEngine(
        clock=KeptClock(),
        zone=dt.UTC,
        place=None,
        latest=lambda pk, dn: {},
        members=_members,
        devices_of=lambda pk: names,
        history=history,
        waits=history,
    )
    for number in range(1, scenes + 1):
        engine.put(build_scene(scene(number), NO_ACTIONS))
    await asyncio.sleep(0)  # (their priming: nothing to read)
    await asyncio.sleep(0)
    uplinks = [
        PropertyValues(
            device=DeviceRef(PRODUCT, names[n % devices][1]),
            received=0,
            values={"Illuminance": 5.0 if (n // devices) % 2 == 0 else 50.0},
            ts=0,
        )
        for n in range(posts)
    ]
    started = time.perf_counter()
    for uplink in uplinks:
        engine.on_uplink(uplink)
    elapsed = time.perf_counter() - started
    await engine.stop()
    return posts / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rates = [asyncio.run(one_run(args.scenes, args.devices, args.posts)) for _ in range(args.runs)]
    print("| scenes | devices | posts | posts heard a second (median) |")
    print("| --- | --- | --- | --- |")
    print(f"| {args.scenes} | {args.devices} | {args.posts} | {statistics.median(rates):,.0f} |")


if __name__ == "__main__":
    main()
