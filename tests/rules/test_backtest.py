"""Backtests on a real server, its history on SQLite and on PostgreSQL: paho lamps post (with
their own times, so the recorded clock is known), a rule is run over the history through
``POST /api/rules/backtest`` — its WHERE, its rate limit on the recorded clock, ``latest()``
as it was then, Alibaba's rule data and the ``$things`` streams, two versions compared — and
nothing is done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_rule_engine import create
from test_rule_shadow import stamped_post

from alibaba_device import lamps, online
from broker_peers import Paho
from history_places import HistoryPlace
from webhook_receiver import WebhookReceiver

# (device, ms after T0, Brightness, Voltage or None): lamp-2's one post falls between
# lamp-1's first two
POSTS = [
    ("lamp-1", 0, 10, 220.0),
    ("lamp-2", 100, 85, None),
    ("lamp-1", 250, 80, None),
    ("lamp-1", 500, 90, None),
    ("lamp-1", 750, 95, None),
    ("lamp-1", 1000, 20, 230.0),
    ("lamp-1", 3000, 85, None),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def history_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryPlace]:
    """Where the server's history is: its data directory's SQLite file, or a PostgreSQL
    schema of its own (dropped after the server stopped: set up before it)."""
    place = HistoryPlace(request.param, tmp_path)
    asyncio.run(place.create())
    yield place
    asyncio.run(place.drop())


@pytest.fixture
def server(history_place: HistoryPlace, make_server: Callable[..., Any]) -> Any:
    """A server whose history is on each backend in turn."""
    if history_place.kind == "sqlite":
        return make_server()
    return make_server(history_url=history_place.url)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    made = WebhookReceiver()
    yield made
    made.close()


@pytest.fixture
def town(server: Any, paho_client: Callable[..., Paho]) -> tuple[str, int]:
    """A lamp product whose two lamps posted ``POSTS`` an hour ago: (pk, T0)."""
    pk, secrets = lamps(server, "lamp-1", "lamp-2")
    clients = {name: online(server, paho_client, pk, name, s) for name, s in secrets.items()}
    t0 = int(time.time() * 1000) - 3_600_000
    for name, after, brightness, voltage in POSTS:
        values: dict[str, Any] = {"Brightness": brightness}
        if voltage is not None:
            values["Voltage"] = voltage
        stamped_post(clients[name], pk, name, t0 + after, values)
    return pk, t0


def backtest(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/rules/backtest", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_an_alibaba_rule_is_backtested_with_its_rate_limit_on_the_recorded_clock(
    api: httpx.Client, town: tuple[str, int], receiver: WebhookReceiver
) -> None:
    pk, t0 = town
    rule = {
        "name": "bright",
        "sql": (
            "SELECT deviceName() AS lamp, items.Brightness.value AS b "
            f'FROM "/{pk}/+/thing/event/property/post" WHERE items.Brightness.value > 50'
        ),
        "actions": [{"type": "webhook", "url": receiver.url}],
        "maxPerSecond": 1,
    }
    found = backtest(api, rule=rule, **{"from": t0, "to": t0 + 10_000})
    assert found["complete"] and found["uplinks"] == 7 and found["values"] == 9
    tally = found["rule"]
    # a token a second, a burst of one: 85 at +100 fires, 80/90/95 within the second after
    # it are limited, 85 at +3000 fires again; 10 and 20 fail the WHERE
    assert (tally["matched"], tally["fired"]) == (7, 2)
    assert tally["notRun"] == {"where": 2, "rateLimit": 3}
    fires = tally["fires"]
    assert [(f["at"] - t0, f["device"], f["output"]) for f in fires] == [
        (100, f"{pk}/lamp-2", {"lamp": "lamp-2", "b": 85}),
        (3000, f"{pk}/lamp-1", {"lamp": "lamp-1", "b": 85}),
    ]
    assert fires[0]["topic"] == f"/{pk}/lamp-2/thing/event/property/post"
    webhook = fires[0]["actions"][0]
    assert (webhook["type"], webhook["url"]) == ("webhook", receiver.url)
    assert webhook["body"] == {"lamp": "lamp-2", "b": 85}
    assert receiver.count == 0  # nothing was sent
    # the same rule stored (disabled): backtested by its id, listing only the first fire
    stored = create(api, **rule, enabled=False)
    by_id = backtest(api, rule=stored["id"], limit=1, **{"from": t0, "to": t0 + 10_000})
    assert by_id["rule"]["fired"] == 2 and len(by_id["rule"]["fires"]) == 1


def test_two_versions_are_compared_and_latest_is_as_it_was_then(
    api: httpx.Client, town: tuple[str, int]
) -> None:
    pk, t0 = town
    things = f'FROM "$things/{pk}/+/properties"'
    mine = {
        "name": "over 50",
        "sql": f"SELECT values.Brightness AS b, latest('Voltage') AS v {things} "
        "WHERE values.Brightness > 50",
    }
    theirs = {
        "name": "over 85",
        "sql": f"SELECT values.Brightness AS b, 'high' AS level {things} "
        "WHERE values.Brightness > 85",
    }
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 // 1000))
    found = backtest(api, rule=mine, against=theirs, **{"from": iso, "to": t0 + 10_000})
    assert found["rule"]["fired"] == 5 and found["against"]["fired"] == 2
    assert found["counts"] == {"onlyRule": 3, "onlyAgainst": 0, "changed": 2, "same": 0}
    only = [(f["at"] - t0, f["output"]) for f in found["onlyRule"]]
    # lamp-1's Voltage was 220 until +1000, 230 after; lamp-2 never had one
    assert only == [
        (100, {"b": 85}),  # (no value: Undefined, left out)
        (250, {"b": 80, "v": 220.0}),
        (3000, {"b": 85, "v": 230.0}),
    ]
    assert [(c["at"] - t0, c["output"], c["against"]) for c in found["changed"]] == [
        (500, {"b": 90, "v": 220.0}, {"b": 90, "level": "high"}),
        (750, {"b": 95, "v": 220.0}, {"b": 95, "level": "high"}),
    ]
    one = backtest(api, rule=mine, device=f"{pk}/lamp-2", **{"from": t0, "to": t0 + 10_000})
    assert one["uplinks"] == 1 and one["rule"]["fired"] == 1 and one["notes"] == []
    empty = backtest(api, rule=mine, device=f"{pk}/lamp-9", **{"from": t0, "to": t0 + 10_000})
    assert empty["notes"] == [f"nothing was recorded in the range for device {pk}/lamp-9"]
    raw = {"name": "raw", "sql": 'SELECT * FROM "town/in"'}
    (note,) = backtest(api, rule=raw, **{"from": t0, "to": t0 + 10_000})["notes"]
    assert "no replayed message matched the FROM of 'raw' (town/in)" in note


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"from": 2000, "to": 1000}, 400, "not before"),
        ({"from": 0, "to": 400 * 86_400_000}, 400, "at most 366 days"),
        ({"from": "yesterday", "to": 1000}, 400, "no time"),
        ({"from": 0, "to": 1000, "limit": 0}, 400, "limit 0"),
        ({"from": 0, "to": 1000, "device": "lamp"}, 400, "PRODUCTKEY/DEVICENAME"),
        ({"from": 0, "to": 1000, "rule": 999}, 404, "no rule 999"),
        ({"from": 0, "to": 1000, "rule": {"name": "x", "sql": "SELECT"}}, 400, "line 1"),
    ],
)
def test_a_bad_backtest_is_answered_with_what_was_wrong(
    api: httpx.Client, body: dict[str, Any], status: int, detail: str
) -> None:
    asked = {"rule": {"name": "any", "sql": 'SELECT * FROM "t"'}, **body}
    response = api.post("/api/rules/backtest", json=asked)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
