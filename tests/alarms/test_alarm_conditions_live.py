"""A product's alarm conditions on a real server: paho Alink devices post, the conditions kept
through the REST API raise, count repeats and clear alarms; durations on a clock the test
moves (a value that breaks one gives it up), thresholds from a device's and a group's tags,
a duration under way at a stop resumed from the history on either registry, and bad input
refused naming what is wrong — by REST and by the command line."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alarm_helpers import created, problem

from alibaba_device import lamps, online, post
from broker_peers import eventually
from installed import HONGSHAN
from manual_clock import ManualClock
from registry_databases import RegistryDatabase
from server_thread import ServerThread
from server_thread import test_settings as settings_in
from thingsboard_device import rest


def volts(op: str, value: float | str | None = None, **more: Any) -> dict[str, Any]:
    predicate: dict[str, Any] = {"property": "Voltage", "op": op}
    if value is not None:
        predicate["value"] = value
    return {"predicates": [predicate], **more}


def alarms_of(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/api/alarms", params=params).json()["items"]
    return items


def one_alarm(api: httpx.Client, **wanted: Any) -> dict[str, Any]:
    """The one alarm, once it is as ``wanted`` says."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = alarms_of(api)
        return len(found) == 1 and all(found[0].get(k) == v for k, v in wanted.items())

    eventually(seen, what=f"an alarm with {wanted} (have {found})")
    return found[0]


def test_a_simple_condition_raises_a_repeat_counts_and_the_clear_clears(
    server: ServerThread, paho_client: Any
) -> None:
    pk, secrets = lamps(server, "lamp-0001")
    with rest(server) as api:
        condition = created(
            api.post(
                f"/api/products/{pk}/alarm-conditions",
                json={
                    "type": "Overvoltage",
                    "create": [
                        {"severity": "critical", **volts(">", 260)},
                        {"severity": "major", **volts(">", 250, kind="repeating", count=3)},
                    ],
                    "clear": volts("<=", 230),
                },
            )
        )
        assert condition["productKey"] == pk and condition["enabled"] is True
        listed = api.get(f"/api/products/{pk}/alarm-conditions").json()["items"]
        assert [c["id"] for c in listed] == [condition["id"]]
        lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
        post(lamp, pk, "lamp-0001", {"Voltage": 255.0})
        post(lamp, pk, "lamp-0001", {"Voltage": 256.0})
        post(lamp, pk, "lamp-0001", {"Voltage": 220.0})  # broken: the count starts again
        for value in (251.0, 252.0, 253.0):
            post(lamp, pk, "lamp-0001", {"Voltage": value})
        alarm = one_alarm(api, severity="major")
        assert alarm["type"] == "Overvoltage" and alarm["deviceName"] == "lamp-0001"
        assert alarm["originator"] == {"kind": "condition", "id": str(condition["id"])}
        details = alarm["details"]
        assert details["condition"] == condition["id"] and details["kind"] == "repeating"
        assert details["count"] == 3
        assert details["checks"] == [
            {
                "property": "Voltage",
                "value": 253.0,
                "op": ">",
                "threshold": 250,
                "thresholdFrom": "value",
            }
        ]
        post(lamp, pk, "lamp-0001", {"Voltage": 270.0})  # the critical one: a repeat, raised
        alarm = one_alarm(api, severity="critical", repeats=1)
        assert alarm["details"]["checks"][0]["value"] == 270.0
        post(lamp, pk, "lamp-0001", {"Voltage": 225.0})
        alarm = one_alarm(api, status="CLEARED_UNACK")
        assert alarm["clearedBy"] == f"condition:{condition['id']}"
        # deleted: it raises nothing more
        assert api.delete(f"/api/alarm-conditions/{condition['id']}").status_code == 204
        post(lamp, pk, "lamp-0001", {"Voltage": 280.0})
        post(lamp, pk, "lamp-0001", {"LightSwitch": 1})
        assert len(alarms_of(api)) == 1 and alarms_of(api)[0]["status"] == "CLEARED_UNACK"


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[ServerThread, ManualClock]]:
    """A server whose scenes' clock (the alarm conditions' too) the test moves."""
    clock = ManualClock(int(time.time() * 1000))
    server = ServerThread(settings_in(tmp_path))
    server.platform.scene_clock = clock
    clock.server = server
    server.start()
    yield server, clock
    server.stop()


def test_a_duration_raises_only_after_its_hold_and_a_breaking_value_prevents_it(
    clocked: tuple[ServerThread, ManualClock], paho_client: Any
) -> None:
    server, clock = clocked
    pk, secrets = lamps(server, "lamp-0001")
    start = clock.now()
    with rest(server) as api:
        created(
            api.post(
                f"/api/products/{pk}/alarm-conditions",
                json={
                    "type": "Overvoltage",
                    "create": [
                        {"severity": "major", **volts(">", 250, kind="duration", forMs=300)}
                    ],
                },
            )
        )
        lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
        post(lamp, pk, "lamp-0001", {"Voltage": 260.0})
        eventually(lambda: clock.due() == [start + 300], what="the hold's timer")
        clock.advance(start + 200)
        post(lamp, pk, "lamp-0001", {"Voltage": 240.0})  # broken before its 300 ms
        eventually(lambda: clock.due() == [], what="the hold given up")
        clock.advance(start + 1000)
        post(lamp, pk, "lamp-0001", {"Voltage": 265.0})  # held again from 1000
        eventually(lambda: clock.due() == [start + 1300], what="the new hold's timer")
        clock.advance(start + 1299)
        post(lamp, pk, "lamp-0001", {"LightSwitch": 1})  # (a post of nothing it reads)
        assert alarms_of(api) == []
        clock.advance(start + 1300)
        alarm = one_alarm(api, severity="major")
        assert alarm["details"]["heldSince"] == start + 1000
        assert alarm["details"]["forMs"] == 300
        assert alarm["details"]["checks"][0]["value"] == 265.0
        # a device deleted with a hold under way: its timer goes with it
        # (values not posted before: a post the same as an earlier one is taken for a resend)
        post(lamp, pk, "lamp-0001", {"Voltage": 241.0})
        post(lamp, pk, "lamp-0001", {"Voltage": 266.0})
        eventually(lambda: clock.due() == [start + 1600], what="a third hold's timer")
        assert api.delete(f"/api/products/{pk}/devices/lamp-0001").status_code == 204
        eventually(lambda: clock.due() == [], what="the deleted device's timer given up")


def test_a_threshold_comes_from_the_devices_tag_else_its_groups_else_the_default(
    server: ServerThread, paho_client: Any
) -> None:
    pk, secrets = lamps(server, "lamp-a", "lamp-b", "lamp-c")
    with rest(server) as api:
        devices = f"/api/products/{pk}/devices"
        changed = api.patch(f"{devices}/lamp-a", json={"tags": {"volt_max": "240"}})
        assert changed.status_code == 200, changed.text
        created(api.post("/api/groups", json={"name": "old_town"}))
        members = {"devices": [{"productKey": pk, "deviceName": n} for n in ("lamp-a", "lamp-b")]}
        assert api.post("/api/groups/old_town/devices", json=members).status_code == 200
        group = api.patch("/api/groups/old_town", json={"tags": {"volt_max": "220"}})
        assert group.status_code == 200 and group.json()["tags"] == {"volt_max": "220"}
        created(
            api.post(
                f"/api/products/{pk}/alarm-conditions",
                json={
                    "type": "Overvoltage",
                    "create": [
                        {
                            "severity": "major",
                            "predicates": [
                                {"property": "Voltage", "op": ">", "tag": "volt_max", "value": 250}
                            ],
                        }
                    ],
                },
            )
        )
        clients = {name: online(server, paho_client, pk, name, secrets[name]) for name in secrets}
        for name, lamp in clients.items():
            post(lamp, pk, name, {"Voltage": 245.0})
        eventually(lambda: len(alarms_of(api)) == 2, what="lamp-a's and lamp-b's alarms")
        by_device = {a["deviceName"]: a["details"]["checks"][0] for a in alarms_of(api)}
        assert by_device["lamp-a"]["threshold"] == 240
        assert by_device["lamp-a"]["thresholdFrom"] == "device tag volt_max"
        assert by_device["lamp-b"]["threshold"] == 220
        assert by_device["lamp-b"]["thresholdFrom"] == "group old_town tag volt_max"
        post(clients["lamp-c"], pk, "lamp-c", {"Voltage": 255.0})  # past the default, 250
        eventually(lambda: len(alarms_of(api)) == 3, what="lamp-c's alarm")
        (alarm,) = alarms_of(api, deviceName="lamp-c")
        assert alarm["details"]["checks"][0]["thresholdFrom"] == "default"


def test_a_duration_under_way_at_a_stop_goes_on_from_the_history_after_the_start(
    make_server: Callable[..., ServerThread], paho_client: Any, registry_db: RegistryDatabase
) -> None:
    url = registry_db.setting
    server = make_server(registry_url=url)
    pk, secrets = lamps(server, "lamp-0001")
    with rest(server) as api:
        condition = created(
            api.post(
                f"/api/products/{pk}/alarm-conditions",
                json={
                    "type": "Overvoltage",
                    "create": [
                        {"severity": "major", **volts(">", 250, kind="duration", forMs=3000)}
                    ],
                },
            )
        )
    lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
    posted_at = int(time.time() * 1000)
    post(lamp, pk, "lamp-0001", {"Voltage": 260.0})
    lamp.stop()
    server.stop()
    restarted_at = int(time.time() * 1000)
    again = make_server(registry_url=url)
    with rest(again) as api:
        kept = api.get(f"/api/alarm-conditions/{condition['id']}").json()
        assert kept["create"] == condition["create"]
        alarm = one_alarm(api, severity="major")
        raised_at = int(time.time() * 1000)
    # held since the post before the stop, not since the start
    assert posted_at - 1000 <= alarm["details"]["heldSince"] <= posted_at + 1000
    assert alarm["details"]["heldSince"] < restarted_at
    assert raised_at < restarted_at + 3000 + 6000  # (a start takes less than six seconds)
    assert alarm["firstRaisedAt"] >= alarm["details"]["heldSince"] + 3000


def test_a_tagged_threshold_follows_group_tags_and_members_without_a_restart(
    make_server: Callable[..., ServerThread], paho_client: Any, registry_db: RegistryDatabase
) -> None:
    url = registry_db.setting
    server = make_server(registry_url=url)
    pk, secrets = lamps(server, "lamp-a", "lamp-b")
    members = "/api/groups/old_town/devices"

    def one(name: str) -> list[dict[str, Any]]:
        return [{"productKey": pk, "deviceName": name}]

    def checked(api: httpx.Client, name: str, repeats: int) -> dict[str, Any]:
        """The check that raised ``name``'s alarm (or raised it ``repeats`` times again)."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = alarms_of(api, deviceName=name)
            return len(found) == 1 and found[0]["repeats"] == repeats

        eventually(seen, what=f"{name}'s alarm, repeated {repeats} times")
        check: dict[str, Any] = found[0]["details"]["checks"][0]
        return check

    with rest(server) as api:
        created(api.post("/api/groups", json={"name": "old_town"}))
        assert api.post(members, json={"devices": one("lamp-a")}).status_code == 200
        assert api.patch("/api/groups/old_town", json={"tags": {"volt_max": "220"}}).is_success
        predicate = {"property": "Voltage", "op": ">", "tag": "volt_max", "value": 250}
        created(
            api.post(
                f"/api/products/{pk}/alarm-conditions",
                json={
                    "type": "Overvoltage",
                    "create": [{"severity": "major", "predicates": [predicate]}],
                },
            )
        )
        clients = {name: online(server, paho_client, pk, name, secrets[name]) for name in secrets}
        lamp_a, lamp_b = clients["lamp-a"], clients["lamp-b"]
        post(lamp_a, pk, "lamp-a", {"Voltage": 230.0})
        check = checked(api, "lamp-a", 0)
        assert (check["threshold"], check["thresholdFrom"]) == (220, "group old_town tag volt_max")
        # the group's tag changed: 231 holds no more (the condition is broken), 245 does
        assert api.patch("/api/groups/old_town", json={"tags": {"volt_max": "240"}}).is_success
        post(lamp_a, pk, "lamp-a", {"Voltage": 231.0})  # (the same post again is a repeat)
        post(lamp_a, pk, "lamp-a", {"Voltage": 245.0})
        check = checked(api, "lamp-a", 1)
        assert (check["threshold"], check["thresholdFrom"]) == (240, "group old_town tag volt_max")
        # out of the group: the default, 250
        assert api.post(f"{members}/remove", json={"devices": one("lamp-a")}).is_success
        post(lamp_a, pk, "lamp-a", {"Voltage": 246.0})
        post(lamp_a, pk, "lamp-a", {"Voltage": 255.0})
        check = checked(api, "lamp-a", 2)
        assert (check["threshold"], check["thresholdFrom"]) == (250, "default")
        # into the group: its tag
        post(lamp_b, pk, "lamp-b", {"Voltage": 244.0})
        assert api.post(members, json={"devices": one("lamp-b")}).status_code == 200
        post(lamp_b, pk, "lamp-b", {"Voltage": 200.0})
        post(lamp_b, pk, "lamp-b", {"Voltage": 245.0})
        check = checked(api, "lamp-b", 0)
        assert (check["threshold"], check["thresholdFrom"]) == (240, "group old_town tag volt_max")
        # a device's own tag before the stop; both broken before it
        assert api.patch(
            f"/api/products/{pk}/devices/lamp-a", json={"tags": {"volt_max": "230"}}
        ).is_success
        post(lamp_a, pk, "lamp-a", {"Voltage": 200.0})
        post(lamp_b, pk, "lamp-b", {"Voltage": 201.0})
    for client in clients.values():
        client.stop()
    server.stop()
    # kept across a restart: the group's tag and members, the device's tag
    again = make_server(registry_url=url)
    with rest(again) as api:
        for name, repeats, threshold, origin in (
            ("lamp-a", 3, 230, "device tag volt_max"),
            ("lamp-b", 1, 240, "group old_town tag volt_max"),
        ):
            lamp = online(again, paho_client, pk, name, secrets[name])
            post(lamp, pk, name, {"Voltage": 235.0 if name == "lamp-a" else 247.0})
            check = checked(api, name, repeats)
            assert (check["threshold"], check["thresholdFrom"]) == (threshold, origin)


def test_bad_conditions_are_refused_naming_what_is_wrong(server: ServerThread) -> None:
    pk, _ = lamps(server)
    good = {"type": "Overvoltage", "create": [{"severity": "major", **volts(">", 250)}]}
    with rest(server) as api:
        path = f"/api/products/{pk}/alarm-conditions"
        problem(api.post("/api/products/nope/alarm-conditions", json=good), 404, "no product nope")
        bad_property = {**good, "create": [{"severity": "major", **volts(">", 1)}]}
        bad_property["create"][0]["predicates"][0]["property"] = "SpO2"
        problem(api.post(path, json=bad_property), 400, "create major", "no property 'SpO2'")
        problem(
            api.post(path, json={**good, "clear": volts("<", 200, kind="duration")}),
            400,
            "clear: duration: forMs 0",
        )
        problem(
            api.post(path, json={**good, "create": [{"severity": "huge", **volts(">", 1)}]}), 400
        )
        problem(api.post(path, json={**good, "clear": volts("<")}), 400, "give a value or a tag")
        problem(
            api.post(path, json={**good, "clear": volts("<", "low")}),
            400,
            "clear: Voltage is a number: 'low' never compares",
        )
        kept = created(api.post(path, json=good))
        problem(api.post(path, json=good), 409, "Overvoltage already")
        problem(
            api.put(f"/api/alarm-conditions/{kept['id']}", json={**good, "productKey": "other"}),
            400,
            "cannot become other",
        )
        changed = api.put(
            f"/api/alarm-conditions/{kept['id']}", json={**good, "description": "mains"}
        )
        assert changed.status_code == 200 and changed.json()["description"] == "mains"
        problem(api.get("/api/alarm-conditions/999"), 404, "no alarm condition 999")
        problem(api.get("/api/products/nope/alarm-conditions"), 404, "no product nope")


def conditions_cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``hongshan alarm condition …`` (the API options go after the three words)."""
    command = [
        HONGSHAN, "alarm", "condition", args[0], "--server",
        f"http://127.0.0.1:{server.ports['http']}", "--data-dir", server.settings.data_dir,
        *args[1:],
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_alarm_conditions_from_the_command_line(server: ServerThread, tmp_path: Path) -> None:
    pk, _ = lamps(server)
    file = tmp_path / "overvoltage.yaml"
    file.write_text(
        "type: Overvoltage\n"
        "description: mains too high\n"
        "create:\n"
        "  - severity: major\n"
        "    predicates: [{property: Voltage, op: '>', tag: volt_max, value: 250}]\n"
        "    kind: duration\n"
        "    forMs: 60000\n"
        "clear:\n"
        "  predicates: [{property: Voltage, op: '<=', value: 230}]\n"
    )
    added = conditions_cli(server, "add", pk, "-f", str(file))
    assert added.returncode == 0, added.stderr
    listed = conditions_cli(server, "list", pk)
    assert "Overvoltage" in listed.stdout and "mains too high" in listed.stdout
    with rest(server) as api:
        (kept,) = api.get(f"/api/products/{pk}/alarm-conditions").json()["items"]
    shown = conditions_cli(server, "show", str(kept["id"]), "--json")
    assert '"forMs": 60000' in shown.stdout
    file.write_text("type: Overvoltage\ncreate:\n  - severity: major\n    predicates: "
                    "[{property: Volts, op: '>', value: 250}]\n")  # fmt: skip
    refused = conditions_cli(server, "change", str(kept["id"]), "-f", str(file))
    assert refused.returncode == 1 and "400" in refused.stderr and "'Volts'" in refused.stderr
    deleted = conditions_cli(server, "delete", str(kept["id"]))
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    missing = conditions_cli(server, "show", str(kept["id"]))
    assert missing.returncode == 1 and "404" in missing.stderr
