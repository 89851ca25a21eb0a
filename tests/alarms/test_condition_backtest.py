"""An alarm condition's backtest on a real server, its history on SQLite and on PostgreSQL:
a paho lamp posts with its own times (the recorded clock is known), a condition is run over
the history through ``POST /api/alarm-conditions/backtest`` — a duration on the recorded
clock, the clear, two versions compared, a stored condition by its id — no alarm is raised,
and a bad range or spec is refused as problem+json; and from the command line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alarm_helpers import created
from test_alarm_conditions_live import conditions_cli, volts

from alibaba_device import lamps, online, stamped_post
from broker_peers import Paho
from history_places import HistoryPlace
from thingsboard_device import rest

# (ms after T0, lamp-1's Voltage)
POSTS = [(0, 230.0), (1000, 255.0), (4000, 256.0), (6000, 220.0), (8000, 262.0)]


@pytest.fixture(params=["sqlite", "postgresql"])
def history_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryPlace]:
    """Where the server's history is (a PostgreSQL schema: set up before the server, dropped
    after it stopped)."""
    place = HistoryPlace(request.param, tmp_path)
    asyncio.run(place.create())
    yield place
    asyncio.run(place.drop())


@pytest.fixture
def recorded(history_place: HistoryPlace, make_server: Callable[..., Any]) -> Any:
    if history_place.kind == "sqlite":
        return make_server()
    return make_server(history_url=history_place.url)


@pytest.fixture
def town(recorded: Any, paho_client: Callable[..., Paho]) -> tuple[str, int]:
    """A lamp product whose lamp-1 posted ``POSTS`` an hour ago: (pk, T0)."""
    pk, secrets = lamps(recorded, "lamp-1", "lamp-2")
    lamp = online(recorded, paho_client, pk, "lamp-1", secrets["lamp-1"])
    t0 = int(time.time() * 1000) - 3_600_000
    for after, voltage in POSTS:
        stamped_post(lamp, pk, "lamp-1", t0 + after, {"Voltage": voltage})
    return pk, t0


HELD = {
    "type": "Overvoltage",
    "create": [{"severity": "major", **volts(">", 250, kind="duration", forMs=2000)}],
    "clear": volts("<=", 230),
}


def backtest(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/alarm-conditions/backtest", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_condition_is_backtested_and_compared_raising_nothing(
    recorded: Any, town: tuple[str, int], tmp_path: Path
) -> None:
    pk, t0 = town
    span = {"from": t0, "to": t0 + 20_000}
    with rest(recorded) as api:
        found = backtest(api, condition=HELD, productKey=pk, **span)
        assert found["complete"] and (found["uplinks"], found["values"]) == (5, 5)
        tally = found["condition"]
        assert (tally["raised"], tally["cleared"], tally["openAtEnd"]) == (2, 1, 1)
        assert [(c["at"] - t0, c["change"]) for c in tally["changes"]] == [
            (3000, "raised"),  # (held from 1 s: between two posts, on the recorded clock)
            (6000, "cleared"),
            (10_000, "raised"),
        ]
        first = tally["changes"][0]
        assert (first["productKey"], first["deviceName"], first["severity"]) == (
            pk,
            "lamp-1",
            "major",
        )
        assert first["details"]["heldSince"] - t0 == 1000
        assert first["details"]["checks"][0]["value"] == 255.0
        assert api.get("/api/alarms").json()["items"] == []  # (nothing was raised)
        # stored (not running), and compared with a change by its id
        stored = created(
            api.post(f"/api/products/{pk}/alarm-conditions", json={**HELD, "enabled": False})
        )
        changed = {**HELD, "create": [{"severity": "critical", **volts(">", 260)}]}
        compared = backtest(api, condition=changed, against=stored["id"], **span)
        assert compared["counts"] == {"onlyCondition": 1, "onlyAgainst": 3, "same": 0}
        assert [c["at"] - t0 for c in compared["onlyCondition"]] == [8000]
        assert compared["against"]["type"] == "Overvoltage"
        by_id = backtest(api, condition=stored["id"], **span)
        assert by_id["condition"]["changes"][0]["details"]["condition"] == stored["id"]
    file = tmp_path / "critical.yaml"
    file.write_text(
        "type: Overvoltage\ncreate:\n  - severity: critical\n"
        "    predicates: [{property: Voltage, op: '>', value: 260}]\n"
    )
    done = conditions_cli(
        recorded,
        "backtest",
        str(stored["id"]),
        "--from",
        str(t0),
        "--to",
        str(t0 + 20_000),
        "--compare",
        str(file),
    )
    assert done.returncode == 0, done.stderr
    assert "raised 2, repeated 0, upgraded 0, cleared 1; open at the end 1" in done.stdout
    assert "only condition" in done.stdout and "only file" in done.stdout
    assert "lamp-1" in done.stdout


def test_a_bad_range_or_condition_is_refused(recorded: Any, town: tuple[str, int]) -> None:
    pk, t0 = town
    with rest(recorded) as api:
        asked = api.post(
            "/api/alarm-conditions/backtest",
            json={"condition": HELD, "productKey": pk, "from": t0, "to": t0 - 1},
        )
        assert asked.status_code == 400
        assert asked.headers["content-type"].startswith("application/problem+json")
        assert "is not before" in asked.json()["detail"]
        wrong = {**HELD, "clear": {"predicates": [{"property": "Nope", "op": "<", "value": 1}]}}
        refused = api.post(
            "/api/alarm-conditions/backtest",
            json={"condition": wrong, "productKey": pk, "from": t0, "to": t0 + 1},
        )
        assert refused.status_code == 400 and "no property 'Nope'" in refused.json()["detail"]
        nowhere = api.post(
            "/api/alarm-conditions/backtest", json={"condition": HELD, "from": t0, "to": t0 + 1}
        )
        assert nowhere.status_code == 400 and "productKey" in nowhere.json()["detail"]
        missing = api.post(
            "/api/alarm-conditions/backtest", json={"condition": 999, "from": t0, "to": t0 + 1}
        )
        assert missing.status_code == 404
