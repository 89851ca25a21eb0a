"""Replay on each backend: uplinks written by the pipeline's history stage come back as the
same neutral uplinks, in time order, a chunk at a time, for one device, a product or all."""

from __future__ import annotations

from typing import Any

import pytest

from history_places import HistoryPlace
from hongshan import messages as m
from hongshan.pipeline.history import HistoryStage
from hongshan.store.history.model import HistoryProblem

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
LAMP = m.DeviceRef("a1Lamp", "lamp-1")
OTHER = m.DeviceRef("a1Lamp", "lamp-2")
METER = m.DeviceRef("a1Meter", "meter-1")


def recorded() -> list[m.Uplink]:
    """What a small town said, in time order (each kind the history keeps)."""
    return [
        m.StatusChanged(device=LAMP, received=T0, online=True, address="10.0.0.7:5100"),
        m.PropertyValues(
            device=LAMP,
            received=T0 + 1,
            ts=T0 + 1,
            values={"Brightness": 40, "LightSwitch": True, "Color": {"r": 1}},
        ),
        m.PropertyValues(device=OTHER, received=T0 + 1, ts=T0 + 1, values={"Brightness": 7}),
        m.PropertyValues(device=METER, received=T0 + 2, ts=T0 + 2, values={"Power": 1.5}),
        m.EventRaised(device=LAMP, received=T0 + 3, ts=T0 + 3, event="Fault", params={"code": 2}),
        m.CommandSent(
            device=LAMP,
            received=T0 + 4,
            call_id="c1",
            service="set",
            params={"Brightness": 90},
            sets_properties=True,
        ),
        m.ServiceReplied(
            device=LAMP, received=T0 + 5, call_id="c1", service="set", code=200, output={}
        ),
        m.CommandGivenUp(
            device=LAMP, received=T0 + 6, call_id="c2", service="Reboot", why="timed_out"
        ),
        m.PropertyValues(device=LAMP, received=T0 + 7, ts=T0 + 7, values={"Name": "Xinhua Road 3"}),
        m.StatusChanged(
            device=LAMP,
            received=T0 + 8,
            online=False,
            reason="disconnect",
            gateway=m.DeviceRef("a1Gw", "gw-1"),
        ),
    ]


async def written(place: HistoryPlace, uplinks: list[m.Uplink]) -> Any:
    history = await place.open()
    stage = HistoryStage(history)
    for uplink in uplinks:
        stage.on_uplink(uplink)
    await history.committed()
    return history


async def replayed(history: Any, start: int, end: int, **scope: Any) -> list[m.Uplink]:
    found: list[m.Uplink] = []
    async for chunk in history.replay(start, end, **scope):
        assert chunk  # (an empty window is not yielded)
        found += chunk
    return found


async def test_every_kind_the_history_keeps_comes_back_as_it_was_heard(
    place: HistoryPlace,
) -> None:
    town = recorded()
    history = await written(place, town)
    try:
        assert await replayed(history, T0, T0 + 9) == town
    finally:
        await history.close()


async def test_a_device_a_product_and_a_range_are_chosen(place: HistoryPlace) -> None:
    town = recorded()
    history = await written(place, town)
    try:
        lamp = await replayed(history, T0, T0 + 9, device=("a1Lamp", "lamp-1"))
        assert lamp == [u for u in town if u.device == LAMP]
        lamps = await replayed(history, T0, T0 + 9, product="a1Lamp")
        assert lamps == [u for u in town if u.device.product == "a1Lamp"]
        middle = await replayed(history, T0 + 1, T0 + 4)
        assert middle == [u for u in town if T0 + 1 <= u.received < T0 + 4]
        assert await replayed(history, T0, T0 + 9, product="nobody") == []
        with pytest.raises(HistoryProblem, match="empty range"):
            await replayed(history, T0 + 9, T0)
    finally:
        await history.close()


async def test_many_values_come_in_chunks_in_time_order(place: HistoryPlace) -> None:
    """2,000 posts a second apart over the windows' growing and shrinking: each comes once,
    in order, and no chunk holds more than the cap."""
    history = await place.open()
    stage = HistoryStage(history)
    posts = [
        m.PropertyValues(
            device=LAMP if i % 2 else OTHER,
            received=T0 + i * 1000,
            ts=T0 + i * 1000,
            values={"Brightness": i % 100, "Voltage": 220.5 + i},
        )
        for i in range(2_000)
    ]
    for post in posts:
        stage.on_uplink(post)
    await history.committed()
    try:
        chunks = [chunk async for chunk in history.replay(T0, T0 + 2_000_000, chunk=100)]
        assert len(chunks) > 5
        assert max(len(chunk) for chunk in chunks) * 2 <= 400  # (two values a post)
        assert [u for chunk in chunks for u in chunk] == posts
    finally:
        await history.close()
