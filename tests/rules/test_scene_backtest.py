"""A scene's backtest on a real server, its history on SQLite and on PostgreSQL: paho lamps
post with their own times (the recorded clock is known), scenes are run over the history
through ``POST /api/scenes/backtest`` — a hold on the recorded clock, a delay moving it, two
versions compared, a stored scene by its id — nothing is done, and a bad range or spec is
refused as problem+json."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_rule_shadow import stamped_post

from alibaba_device import lamps, online
from broker_peers import Paho
from history_places import HistoryPlace

# (ms after T0, lamp-1's Brightness)
POSTS = [(0, 10), (1000, 80), (4000, 85), (6000, 20), (8000, 95)]


@pytest.fixture(params=["sqlite", "postgresql"])
def history_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryPlace]:
    """Where the server's history is (a PostgreSQL schema: set up before the server, dropped
    after it stopped)."""
    place = HistoryPlace(request.param, tmp_path)
    asyncio.run(place.create())
    yield place
    asyncio.run(place.drop())


@pytest.fixture
def server(history_place: HistoryPlace, make_server: Callable[..., Any]) -> Any:
    if history_place.kind == "sqlite":
        return make_server()
    return make_server(history_url=history_place.url)


@pytest.fixture
def town(server: Any, paho_client: Callable[..., Paho]) -> tuple[str, int]:
    """A lamp product whose lamp-1 posted ``POSTS`` an hour ago: (pk, T0)."""
    pk, secrets = lamps(server, "lamp-1", "lamp-2")
    lamp = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    t0 = int(time.time() * 1000) - 3_600_000
    for after, brightness in POSTS:
        stamped_post(lamp, pk, "lamp-1", t0 + after, {"Brightness": brightness})
    return pk, t0


def bright(pk: str, value: int, hold: float) -> dict[str, Any]:
    return {
        "type": "threshold",
        "device": {"productKey": pk, "deviceName": "lamp-1"},
        "property": "Brightness",
        "op": ">",
        "value": value,
        "forSeconds": hold,
    }


def lamp_on(pk: str) -> list[dict[str, Any]]:
    return [
        {"type": "set", "productKey": pk, "deviceName": "lamp-2", "values": {"LightSwitch": 1}},
        {"type": "delay", "seconds": 1.5},
        {"type": "republish", "topic": "town/lamp-on"},
    ]


def backtest(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/scenes/backtest", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_scene_is_backtested_and_compared_doing_nothing(
    api: httpx.Client, town: tuple[str, int]
) -> None:
    pk, t0 = town
    scene = {"name": "bright for 2 s", "triggers": [bright(pk, 50, 2)], "actions": lamp_on(pk)}
    found = backtest(api, scene=scene, **{"from": t0, "to": t0 + 20_000})
    assert found["complete"] and (found["uplinks"], found["values"]) == (5, 5)
    tally = found["scene"]
    assert (tally["triggered"], tally["ran"], tally["notRun"], tally["skipped"]) == (2, 2, 0, 0)
    first, second = tally["runs"]
    # held from 1 s, complete at 3 s (between two posts: the recorded clock's timer)
    assert (first["at"] - t0, first["trigger"]["heldSince"] - t0) == (3000, 1000)
    assert first["trigger"]["value"] == 80 and first["state"] == "done"
    set_step, republish = first["steps"]
    assert (set_step["type"], set_step["at"] - t0) == ("set", 3000)
    assert (set_step["deviceName"], set_step["values"]) == ("lamp-2", {"LightSwitch": 1})
    assert (republish["type"], republish["at"] - t0) == ("republish", 4500)
    assert second["at"] - t0 == 10_000  # (broken at 6 s, 95 at 8 s held two seconds)
    # nothing was done: no command to lamp-2
    assert api.get("/api/commands", params={"deviceName": "lamp-2"}).json()["items"] == []
    # the change (over 90 rather than 50), and the old version stored, by its id
    created = api.post("/api/scenes", json={**scene, "enabled": False})
    assert created.status_code == 201, created.text
    changed = {**scene, "name": "very bright", "triggers": [bright(pk, 90, 2)]}
    compared = backtest(
        api, scene=changed, against=created.json()["id"], **{"from": t0, "to": t0 + 20_000}
    )
    assert compared["counts"] == {"onlyScene": 0, "onlyAgainst": 1, "same": 1}
    assert [run["at"] - t0 for run in compared["onlyAgainst"]] == [3000]
    assert compared["against"]["name"] == "bright for 2 s"


def test_a_bad_range_or_scene_is_refused(api: httpx.Client, town: tuple[str, int]) -> None:
    pk, t0 = town
    scene = {"name": "x", "triggers": [bright(pk, 50, 0)]}
    backwards = api.post("/api/scenes/backtest", json={"scene": scene, "from": t0, "to": t0 - 1})
    assert backwards.status_code == 400
    assert backwards.headers["content-type"].startswith("application/problem+json")
    assert "is not before" in backwards.json()["detail"]
    wrong = {**scene, "triggers": [{**bright(pk, 50, 0), "property": "Nope"}]}
    refused = api.post("/api/scenes/backtest", json={"scene": wrong, "from": t0, "to": t0 + 1})
    assert refused.status_code == 400
    assert "no property 'Nope'" in refused.json()["detail"]
    missing = api.post("/api/scenes/backtest", json={"scene": 999, "from": t0, "to": t0 + 1})
    assert missing.status_code == 404
