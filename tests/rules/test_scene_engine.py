"""Scenes running live on a real server: devices on paho clients, scenes made through the REST
API, their actions seen by a subscriber and a device; restarts of the platform on its data
directory; schedules, modes and delays on a clock the test moves."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alibaba_device import lamps, online, post
from broker_peers import Paho, eventually
from history_places import HistoryPlace
from hongshan.rules.sun import Place, SunEvent, SunTrigger
from manual_clock import ManualClock
from server_thread import ServerThread
from server_thread import test_settings as settings_in
from thingsboard_device import rest
from webhook_receiver import WebhookReceiver


def create(api: httpx.Client, **scene: Any) -> dict[str, Any]:
    response = api.post("/api/scenes", json=scene)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def watch(server: Any, paho_client: Any, topic: str) -> Paho:
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe(topic, 1) == [1]
    return watcher


def republish(topic: str) -> dict[str, Any]:
    return {"type": "republish", "topic": topic, "qos": 1}


def trace_of(api: httpx.Client, scene: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/api/scenes/{scene['id']}/trace").json()
    return found


def bright(pk: str, name: str, hold: float) -> dict[str, Any]:
    return {
        "type": "threshold",
        "device": {"productKey": pk, "deviceName": name},
        "property": "Brightness",
        "op": ">",
        "value": 50,
        "forSeconds": hold,
    }


def test_a_lamp_goes_on_when_a_value_has_held_past_a_threshold(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "lux-01", "lamp-b")
    lamp = online(server, paho_client, pk, "lamp-b", secrets["lamp-b"])
    set_topic = f"/sys/{pk}/lamp-b/thing/service/property/set"
    assert lamp.subscribe(set_topic, 1) == [1]
    watcher = watch(server, paho_client, "town/#")
    scene = create(
        api,
        name="on when bright for a second",
        triggers=[bright(pk, "lux-01", 1)],
        actions=[
            {"type": "set", "productKey": pk, "deviceName": "lamp-b", "values": {"LightSwitch": 1}},
            {"type": "alarm", "alarmType": "Too bright", "severity": "minor"},
            republish("town/on"),
        ],
    )
    sensor = online(server, paho_client, pk, "lux-01", secrets["lux-01"])
    post(sensor, pk, "lux-01", {"Brightness": 90})
    post(sensor, pk, "lux-01", {"Brightness": 10})  # broken: the hold starts again
    started = time.monotonic()
    post(sensor, pk, "lux-01", {"Brightness": 80})
    post(sensor, pk, "lux-01", {"Brightness": 95})  # (still above: no new crossing)
    got = json.loads(watcher.until("town/on")[-1].payload)
    assert time.monotonic() - started >= 1.0
    assert (got["trigger"], got["deviceName"], got["value"]) == ("threshold", "lux-01", 95)
    command = json.loads(lamp.until(set_topic)[-1].payload)
    assert command["params"] == {"LightSwitch": 1}
    # the scene's command and alarm say it made them; the alarm is on the trigger's device
    (record,) = api.get("/api/commands", params={"deviceName": "lamp-b"}).json()["items"]
    assert record["origin"] == f"scene:{scene['id']}"
    (alarm,) = api.get("/api/alarms", params={"type": "Too bright"}).json()["items"]
    assert alarm["deviceName"] == "lux-01"
    assert alarm["originator"] == {"kind": "scene", "id": str(scene["id"])}
    trace = trace_of(api, scene)
    assert trace["counters"]["triggered"] == 1 and trace["counters"]["ran"] == 1
    eventually(lambda: trace_of(api, scene)["runs"][0]["state"] == "done")


@pytest.fixture(params=["sqlite", "postgresql"])
def history_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A server's history on each backend: the data directory's SQLite file, or a PostgreSQL
    schema of its own (asked for before ``make_server``: dropped after its servers stop)."""
    if request.param == "sqlite":
        yield {}
        return
    place = HistoryPlace("postgresql", tmp_path)
    asyncio.run(place.create())
    try:
        yield {"history_url": place.url}
    finally:
        asyncio.run(place.drop())


def test_a_hold_under_way_at_a_stop_goes_on_from_the_history_after_the_start(
    history_settings: dict[str, Any], make_server: Callable[..., ServerThread], paho_client: Any
) -> None:
    server = make_server(**history_settings)
    pk, secrets = lamps(server, "lux-01")
    with rest(server) as api:
        scene = create(
            api,
            name="held across a restart",
            triggers=[bright(pk, "lux-01", 6)],
            actions=[republish("town/held")],
        )
    sensor = online(server, paho_client, pk, "lux-01", secrets["lux-01"])
    posted_at = int(time.time() * 1000)
    post(sensor, pk, "lux-01", {"Brightness": 90})
    sensor.stop()
    server.stop()
    restarted_at = int(time.time() * 1000)
    again = make_server(**history_settings)
    watcher = watch(again, paho_client, "town/#")
    got = json.loads(watcher.until("town/held", timeout=10)[-1].payload)
    fired_at = int(time.time() * 1000)
    # held since the value before the stop, not since the start: fired 6 s after the post
    assert posted_at - 1000 <= got["heldSince"] <= posted_at + 1000
    assert got["heldSince"] < restarted_at
    assert fired_at < restarted_at + 6000  # (a start takes less than six seconds)
    with rest(again) as api:
        assert trace_of(api, scene)["counters"]["ran"] == 1


def test_a_station_that_went_quiet_triggers_its_scene_once(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "station-7")
    watcher = watch(server, paho_client, "town/#")
    scene = create(
        api,
        name="station quiet",
        triggers=[
            {
                "type": "noData",
                "device": {"productKey": pk},
                "forSeconds": 1,
            }
        ],
        actions=[republish("town/quiet/${deviceName}")],
    )
    station = online(server, paho_client, pk, "station-7", secrets["station-7"])
    post(station, pk, "station-7", {"Brightness": 1})
    got = json.loads(watcher.until("town/quiet/station-7")[-1].payload)
    assert got["trigger"] == "noData" and got["lastHeard"] > 0
    assert trace_of(api, scene)["counters"]["triggered"] == 1


def test_a_silence_under_way_at_a_stop_counts_from_the_last_stored_value(
    make_server: Callable[..., ServerThread], paho_client: Any
) -> None:
    server = make_server()
    pk, secrets = lamps(server, "station-7")
    with rest(server) as api:
        create(
            api,
            name="quiet across a restart",
            triggers=[
                {
                    "type": "noData",
                    "device": {"productKey": pk, "deviceName": "station-7"},
                    "forSeconds": 6,
                }
            ],
            actions=[republish("town/quiet")],
        )
    station = online(server, paho_client, pk, "station-7", secrets["station-7"])
    posted_at = int(time.time() * 1000)
    post(station, pk, "station-7", {"Brightness": 1})
    station.stop()
    server.stop()
    restarted_at = int(time.time() * 1000)
    again = make_server()
    watcher = watch(again, paho_client, "town/#")
    got = json.loads(watcher.until("town/quiet", timeout=10)[-1].payload)
    fired_at = int(time.time() * 1000)
    assert posted_at - 1000 <= got["lastHeard"] <= posted_at + 1000
    assert fired_at < restarted_at + 6000  # (not six seconds from the start)


def test_a_cron_schedule_triggers_its_scene(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    watcher = watch(server, paho_client, "town/#")
    scene = create(
        api,
        name="every second",
        triggers=[{"type": "cron", "expr": "* * * * * *"}],
        actions=[republish("town/tick")],
    )
    first, second = (json.loads(m.payload) for m in watcher.take(2))
    assert first["trigger"] == "cron" and first["at"] % 1000 == 0
    # (every second; one the loop was too late for is skipped, never fired twice)
    assert second["at"] > first["at"] and second["at"] % 1000 == 0
    assert api.post(f"/api/scenes/{scene['id']}/disable").json()["enabled"] is False


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[ServerThread, ManualClock]]:
    """A server whose scenes run on a clock the test moves (the town: Berlin, at 52.52 N
    13.40 E), at 2026-06-01 12:00 UTC."""
    start = int(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)
    clock = ManualClock(start)
    settings = settings_in(tmp_path, time_zone="Europe/Berlin", latitude=52.52, longitude=13.40)
    server = ServerThread(settings)
    server.platform.scene_clock = clock
    clock.server = server
    server.start()
    yield server, clock
    server.stop()


def test_a_sun_trigger_is_scheduled_at_the_towns_sunset_and_fires_there(
    clocked: tuple[ServerThread, ManualClock], paho_client: Any
) -> None:
    server, clock = clocked
    watcher = watch(server, paho_client, "town/#")
    with rest(server) as api:
        create(
            api,
            name="lamps at dusk",
            triggers=[{"type": "sun", "event": "sunset", "offsetSeconds": -900}],
            actions=[republish("town/dusk")],
        )
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    expected = SunTrigger(SunEvent.SUNSET, -900_000).next_after(
        clock.now(), Place(52.52, 13.40), berlin
    )
    assert expected is not None and expected in clock.due()
    local = dt.datetime.fromtimestamp(expected / 1000, berlin)
    assert (local.date(), local.hour) == (dt.date(2026, 6, 1), 21)  # (sunset 21:2x CEST)
    clock.advance(expected - 1)
    clock.advance(expected)
    got = json.loads(watcher.until("town/dusk")[-1].payload)
    assert got == {"trigger": "sun", "index": 0, "at": expected}
    following = SunTrigger(SunEvent.SUNSET, -900_000).next_after(
        expected, Place(52.52, 13.40), berlin
    )
    assert following in clock.due()  # the next day's


def test_a_sun_trigger_with_no_place_anywhere_is_refused(server: Any, api: httpx.Client) -> None:
    response = api.post(
        "/api/scenes",
        json={"name": "dusk", "triggers": [{"type": "sun", "event": "dusk"}]},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"].startswith("trigger 1 (sun): no place to watch the sun")


def test_conditions_stop_runs_and_the_trace_says_which(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "pm-1", "pm-2", "lamp-b")
    assert api.post("/api/groups", json={"name": "north"}).status_code == 201
    members = [{"productKey": pk, "deviceName": name} for name in ("pm-1", "pm-2")]
    assert api.post("/api/groups/north/devices", json={"devices": members}).status_code == 200
    pm1 = online(server, paho_client, pk, "pm-1", secrets["pm-1"])
    pm2 = online(server, paho_client, pk, "pm-2", secrets["pm-2"])
    post(pm1, pk, "pm-1", {"Brightness": 30})
    post(pm2, pk, "pm-2", {"Brightness": 50})  # the average is 40
    hour = dt.datetime.now(dt.UTC).hour
    closed = f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"
    watcher = watch(server, paho_client, "town/#")

    def scene(name: str, conditions: dict[str, Any]) -> dict[str, Any]:
        return create(
            api,
            name=name,
            triggers=[{"type": "webhook"}],
            conditions=conditions,
            actions=[republish(f"town/{name}")],
        )

    window = scene("window", {"all": [{"type": "timeWindow", "window": closed}]})
    value = scene(
        "value",
        {
            "all": [
                {
                    "type": "deviceValue",
                    "productKey": pk,
                    "deviceName": "pm-1",
                    "property": "Brightness",
                    "op": ">",
                    "value": 35,
                }
            ]
        },
    )
    group = scene(
        "group",
        {
            "all": [
                {
                    "type": "groupAggregate",
                    "group": "north",
                    "property": "Brightness",
                    "fn": "avg",
                    "op": ">",
                    "value": 45,
                }
            ]
        },
    )
    either = scene(
        "either",
        {
            "any": [
                {"type": "timeWindow", "window": closed},
                {
                    "type": "groupAggregate",
                    "group": "north",
                    "property": "Brightness",
                    "fn": "avg",
                    "op": ">=",
                    "value": 40,
                },
            ]
        },
    )
    for made in (window, value, group, either):
        assert api.post(f"/api/scenes/{made['id']}/trigger").status_code == 202
    assert json.loads(watcher.until("town/either")[-1].payload)["trigger"] == "manual"
    for made, condition, why in (
        (window, f"timeWindow {closed}", f"outside {closed} (UTC)"),
        (value, f"deviceValue {pk}/pm-1 Brightness > 35", f"{pk}/pm-1 Brightness is 30, not > 35"),
        (
            group,
            "groupAggregate avg(Brightness) of north > 45",
            "avg of Brightness over group north is 40.0, not > 45",
        ),
    ):
        eventually(lambda made=made: trace_of(api, made)["counters"]["notRun"] == 1)
        stopped = trace_of(api, made)["nonRuns"][0]
        assert (stopped["reason"], stopped["condition"], stopped["why"]) == (
            "condition",
            condition,
            why,
        )
    assert trace_of(api, either)["counters"]["ran"] == 1
    for made in (window, value, group):
        assert trace_of(api, made)["counters"]["ran"] == 0


MODES = [
    # mode, max, runs started, runs skipped, states of the runs (newest first) once all is done
    ("single", 10, 1, 2, ["done"]),
    ("restart", 10, 3, 0, ["done", "cancelled", "cancelled"]),
    ("queued", 2, 2, 1, ["done", "done"]),
    ("parallel", 2, 2, 1, ["done", "done"]),
]


@pytest.mark.parametrize(("mode", "most", "ran", "skipped", "states"), MODES)
def test_modes_decide_what_a_trigger_does_while_a_run_is_under_way(
    clocked: tuple[ServerThread, ManualClock],
    paho_client: Any,
    mode: str,
    most: int,
    ran: int,
    skipped: int,
    states: list[str],
) -> None:
    server, clock = clocked
    watcher = watch(server, paho_client, "town/#")
    with rest(server) as api:
        scene = create(
            api,
            name=f"a {mode} scene",
            triggers=[{"type": "webhook"}],
            actions=[
                republish("town/begin"),
                {"type": "delay", "seconds": 60},
                republish("town/end"),
            ],
            mode=mode,
            max=most,
        )
        for number in range(3):
            response = api.post(f"/api/scenes/{scene['id']}/trigger", json={"n": number})
            assert response.status_code == 202
            eventually(
                lambda number=number: (
                    trace_of(api, scene)["counters"]["triggered"] == number + 1
                    and _settled(trace_of(api, scene))
                )
            )
        for _ in range(3):
            clock.advance(clock.now() + 60_000)
            eventually(lambda: _settled(trace_of(api, scene)))
        trace = trace_of(api, scene)
        assert (trace["counters"]["ran"], trace["counters"]["skipped"]) == (ran, skipped)
        assert [run["state"] for run in trace["runs"]] == states
        if skipped:
            assert trace["nonRuns"][0]["why"].startswith(mode)
    ends = [m for m in watcher.take(ran + states.count("done")) if m.topic == "town/end"]
    assert len(ends) == states.count("done")


def _settled(trace: dict[str, Any]) -> bool:
    """No run of the scene between two steps (each is running an action or waiting)."""
    counters = trace["counters"]
    heard = counters["ran"] + counters["skipped"] + counters["notRun"] + trace["queued"]
    return heard == counters["triggered"] and all(
        run["state"] != "running" for run in trace["runs"]
    )


def test_a_delay_under_way_at_a_stop_goes_on_after_the_start_without_redoing(
    make_server: Callable[..., ServerThread], paho_client: Any
) -> None:
    server = make_server()
    watcher = watch(server, paho_client, "town/#")
    with rest(server) as api:
        scene = create(
            api,
            name="off later",
            triggers=[{"type": "webhook"}],
            actions=[
                republish("town/on"),
                {"type": "delay", "seconds": 3},
                republish("town/off"),
            ],
        )
        assert api.post(f"/api/scenes/{scene['id']}/trigger", json={"k": 1}).status_code == 202
    assert watcher.until("town/on")[-1].topic == "town/on"
    with rest(server) as api:
        eventually(lambda: trace_of(api, scene)["runs"][0]["state"] == "waiting")
    watcher.stop()  # (before its server: paho would try to reconnect)
    server.stop()
    again = make_server()
    watcher = watch(again, paho_client, "town/#")
    got = watcher.until("town/off", timeout=10)
    assert [m.topic for m in got] == ["town/off"]  # the first step not again
    assert json.loads(got[-1].payload) == {"trigger": "manual", "data": {"k": 1}}
    with rest(again) as api:
        eventually(lambda: trace_of(api, scene)["runs"][0]["state"] == "done")
        run = trace_of(api, scene)["runs"][0]
        assert run["resumed"] is True and run["stepsDone"] == 3


def test_an_outside_system_triggers_a_scene_with_its_token(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    watcher = watch(server, paho_client, "town/#")
    hook = WebhookReceiver()
    scene = create(
        api,
        name="door",
        triggers=[{"type": "webhook"}],
        actions=[republish("town/door"), {"type": "webhook", "url": hook.url}],
    )
    token = scene["token"]
    url = f"http://127.0.0.1:{server.ports['http']}/api/scenes/{scene['id']}/trigger"
    refused = httpx.post(url, json={"door": "open"})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert httpx.post(url, headers={"X-Hongshan-Scene-Token": "wrong"}).status_code == 401
    answered = httpx.post(url, json={"door": "open"}, headers={"X-Hongshan-Scene-Token": token})
    assert answered.status_code == 202, answered.text
    got = json.loads(watcher.until("town/door")[-1].payload)
    assert got == {"trigger": "webhook", "data": {"door": "open"}}
    headers, body = hook.get()  # the scene's own webhook says it is the scene's
    hook.close()
    assert headers["X-Hongshan-Scene"] == str(scene["id"]) and "X-Hongshan-Rule" not in headers
    assert json.loads(body) == got
    assert httpx.post(f"{url}?token={token}", content=b"{nope").status_code == 400
    other = create(api, name="no hook", triggers=[{"type": "cron", "expr": "@yearly"}], actions=[])
    other_url = url.replace(f"/{scene['id']}/", f"/{other['id']}/")
    no_hook = httpx.post(other_url, headers={"X-Hongshan-Scene-Token": other["token"]})
    assert no_hook.status_code == 409 and "no webhook trigger" in no_hook.json()["detail"]
    assert "token" not in api.get(f"/api/scenes/{scene['id']}").json()


def test_a_scene_naming_what_the_registry_lacks_is_refused_naming_it(
    server: Any, api: httpx.Client
) -> None:
    pk, _ = lamps(server, "lamp-b")
    cases = [
        (
            {"triggers": [{**bright(pk, "lamp-b", 0), "property": "Colour"}]},
            f"trigger 1 (threshold): product {pk}'s thing model has no property 'Colour'",
        ),
        (
            {"triggers": [bright(pk, "lamp-x", 0)]},
            f"trigger 1 (threshold): no device lamp-x in product {pk}",
        ),
        (
            {
                "triggers": [{"type": "webhook"}],
                "actions": [
                    {"type": "set", "productKey": pk, "deviceName": "lamp-b", "values": {"X": 1}}
                ],
            },
            f"action 1 (set): product {pk}'s thing model has no property 'X'",
        ),
        (
            {
                "triggers": [{"type": "webhook"}],
                "actions": [
                    {"type": "delay", "seconds": 1},
                    {"type": "alarm", "alarmType": "t", "productKey": pk, "deviceName": "x"},
                ],
            },
            f"action 2 (alarm): no device x in product {pk}",
        ),
        (
            {"triggers": [{"type": "cron", "expr": "0 25 * * *"}]},
            "trigger 1 (cron): hour: 25 is out of 0-23",
        ),
    ]
    for body, detail in cases:
        response = api.post("/api/scenes", json={"name": "bad", **body})
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == detail


def test_a_change_an_event_and_a_status_trigger_a_scene_each_per_device(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "lamp-1", "lamp-2")
    watcher = watch(server, paho_client, "town/#")
    every = {"productKey": pk}
    create(
        api,
        name="lamp happenings",
        triggers=[
            {"type": "changed", "device": every, "property": "WorkMode"},
            {"type": "event", "device": every, "event": "LampFault"},
            {"type": "status", "device": {**every, "deviceName": "lamp-2"}, "status": "offline"},
        ],
        actions=[republish("town/${trigger}/${deviceName}")],
        mode="parallel",
    )
    lamp1 = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    lamp2 = online(server, paho_client, pk, "lamp-2", secrets["lamp-2"])
    post(lamp1, pk, "lamp-1", {"WorkMode": 1})  # the first value heard: no change yet
    post(lamp2, pk, "lamp-2", {"WorkMode": 2})
    post(lamp1, pk, "lamp-1", {"WorkMode": 1})
    post(lamp1, pk, "lamp-1", {"WorkMode": 2})  # a change of lamp-1's, not of lamp-2's
    got = watcher.get()
    assert got.topic == "town/changed/lamp-1"
    assert json.loads(got.payload)["value"] == 2
    fault = {"id": "2", "version": "1.0", "params": {"FaultCode": 3, "Voltage": 1.5}}
    topic = f"/sys/{pk}/lamp-2/thing/event/LampFault/post"
    assert lamp2.publish(topic, json.dumps(fault), 1) == 0
    got = watcher.get()
    assert got.topic == "town/event/lamp-2"
    assert json.loads(got.payload)["params"] == {"FaultCode": 3, "Voltage": 1.5}
    lamp1.stop()  # (not the lamp the status trigger watches)
    lamp2.stop()
    got = watcher.get()
    assert got.topic == "town/status/lamp-2"
    assert json.loads(got.payload)["status"] == "offline"


def test_disabling_a_scene_cancels_its_runs_and_forgets_their_delays(
    clocked: tuple[ServerThread, ManualClock], paho_client: Any
) -> None:
    server, clock = clocked
    watcher = watch(server, paho_client, "town/#")
    waits = server.platform.registry.scenes.waits
    with rest(server) as api:
        scene = create(
            api,
            name="later",
            triggers=[{"type": "webhook"}],
            actions=[{"type": "delay", "seconds": 60}, republish("town/later")],
        )
        assert api.post(f"/api/scenes/{scene['id']}/trigger").status_code == 202
        eventually(lambda: len(server.run(waits())) == 1)
        assert server.run(waits())[0].due == clock.now() + 60_000
        assert api.post(f"/api/scenes/{scene['id']}/disable").status_code == 200
        eventually(lambda: server.run(waits()) == [])
        assert trace_of(api, scene)["running"] is False
        clock.advance(clock.now() + 120_000)
        assert api.post(f"/api/scenes/{scene['id']}/enable").status_code == 200
        assert api.post(f"/api/scenes/{scene['id']}/trigger").status_code == 202
        eventually(lambda: len(server.run(waits())) == 1)
        clock.advance(clock.now() + 60_000)
        assert json.loads(watcher.get().payload) == {"trigger": "manual", "data": None}
        eventually(lambda: trace_of(api, scene)["runs"][0]["state"] == "done")
        assert server.run(waits()) == []


def test_a_scenes_invoke_sends_its_fixed_params(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "lamp-b")
    lamp = online(server, paho_client, pk, "lamp-b", secrets["lamp-b"])
    call_topic = f"/sys/{pk}/lamp-b/thing/service/SetSchedule"
    assert lamp.subscribe(call_topic, 1) == [1]
    schedule = [{"OnTime": "18:30", "OffTime": "01:00"}]
    scene = create(
        api,
        name="evening schedule",
        triggers=[{"type": "webhook"}],
        actions=[
            {
                "type": "invoke",
                "productKey": pk,
                "deviceName": "lamp-b",
                "service": "SetSchedule",
                "params": {"Schedule": schedule},
            }
        ],
    )
    assert api.post(f"/api/scenes/{scene['id']}/trigger", json={"x": 1}).status_code == 202
    call = json.loads(lamp.until(call_topic)[-1].payload)
    assert call["params"] == {"Schedule": schedule}
    refused = api.post(
        "/api/scenes",
        json={
            "name": "no such service",
            "triggers": [{"type": "webhook"}],
            "actions": [
                {"type": "invoke", "productKey": pk, "deviceName": "lamp-b", "service": "Fly"}
            ],
        },
    )
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        f"action 1 (invoke): product {pk}'s thing model has no service 'Fly'"
    )
