"""What one town sees of the other once both run: lists (and their totals), the live API, its
rules and MQTT topics; and what a viewer limited to a clinic group sees of its own town."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from towns import Town, admin_token, client, post_value
from websockets.sync.client import connect

from alibaba_device import signed
from broker_peers import Paho, eventually
from webhook_receiver import WebhookReceiver

LISTS = (
    "/api/products",
    "/api/devices",
    "/api/groups",
    "/api/rules",
    "/api/scenes",
    "/api/alarms",
    "/api/commands",
    "/api/alarm-notifications",
    "/api/users",
    "/api/keys",
    "/api/audit",
    "/api/map/devices",
)


@pytest.mark.parametrize("path", LISTS)
def test_a_list_as_b_never_holds_a_thing_of_a(
    server: Any, north: Town, south: Town, path: str
) -> None:
    with client(server, south.tokens["admin"]) as b:
        answer = b.get(path)
    assert answer.status_code == 200, answer.text
    assert north.pk not in answer.text and "north" not in answer.text, answer.text
    body = answer.json()
    if isinstance(body, dict) and "total" in body:
        assert body["total"] == len(body["items"]), "a total counts B's alone"


def test_history_across_devices_as_b_holds_b_alone(server: Any, north: Town, south: Town) -> None:
    with client(server, south.tokens["admin"]) as b:
        latest = b.get("/api/history/latest").json()
        aggregate = b.get(
            "/api/history/aggregate", params={"identifier": "Brightness", "groupBy": "device"}
        ).json()
    assert {row["productKey"] for row in latest} == {south.pk}
    assert {series["key"].split("/")[0] for series in aggregate["series"]} == {south.pk}


def test_a_clinic_viewer_sees_only_its_group_devices(server: Any, north: Town) -> None:
    inside, outside = north.lamps
    with client(server, north.tokens["operator"]) as operator:
        raised = operator.post(
            "/api/alarms", json={"productKey": north.pk, "deviceName": outside, "type": "ward"}
        )
        assert raised.status_code == 201, raised.text
    with client(server, north.tokens["clinic"]) as clinic:
        devices = clinic.get("/api/devices").json()
        assert [d["deviceName"] for d in devices["items"]] == [inside] and devices["total"] == 1
        device = f"/api/products/{north.pk}/devices"
        assert clinic.get(f"{device}/{inside}/history/Brightness").json()["points"]
        for path in ("", "/history/Brightness", "/properties", "/shadow", "/log"):
            assert clinic.get(f"{device}/{outside}{path}").status_code == 404, path
        alarms = clinic.get("/api/alarms").json()
        assert {a["deviceName"] for a in alarms["items"]} == {inside}
        assert alarms["total"] == len(alarms["items"])
        commands = clinic.get("/api/commands").json()["items"]
        assert {c["deviceName"] for c in commands} <= {inside}
        assert clinic.get("/api/groups").json()["total"] == 1
        latest = clinic.get("/api/history/latest").json()
        assert [row["deviceName"] for row in latest] == [inside]
        mapped = clinic.get("/api/map/devices").json()["devices"]
        assert [row[1] for row in mapped] == [inside]
    with client(server, north.tokens["viewer"]) as viewer:  # (its town's, not limited)
        assert viewer.get(f"{device}/{outside}/history/Brightness").status_code == 200


def test_a_clinic_operator_may_not_change_rules(server: Any, north: Town) -> None:
    with client(server, north.tokens["admin"]) as admin:
        limited = {"name": "north-nurse", "password": "a long password 1", "role": "operator"}
        made = admin.post("/api/users", json={**limited, "groups": [north.group]})
        assert made.status_code == 201, made.text
        key = admin.post(
            "/api/keys", json={"name": "nurse-key", "role": "operator", "groups": [north.group]}
        ).json()["key"]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{server.ports['http']}", headers={"X-API-Key": key}
    ) as nurse:
        assert nurse.get(f"/api/rules/{north.ids['rule']}").status_code == 200
        refused = nurse.post(f"/api/rules/{north.ids['rule']}/disable")
        assert refused.status_code == 403 and "limited to device groups" in refused.text
        rule = {"name": "ward", "sql": 'SELECT * FROM "/sys/#"', "actions": []}
        assert nurse.post("/api/rules", json=rule).status_code == 403
        assert nurse.delete(f"/api/scenes/{north.ids['scene']}").status_code == 403


def test_a_rule_of_b_hears_no_message_of_a(server: Any, north: Town, south: Town) -> None:
    """Both towns' rules listen to "/sys/#": B's counts its own lamp's post, never A's."""
    trace = f"/api/rules/{south.ids['rule']}/trace"
    with client(server, south.tokens["admin"]) as b:

        def matched() -> int:
            count: int = b.get(trace).json()["counters"]["matched"]
            return count

        before = matched()
        post_value(server, north, north.lamp, 41).stop()
        assert matched() == before
        post_value(server, south, south.lamp, 42).stop()
        eventually(lambda: matched() > before, what="B's rule heard B's lamp")


def test_a_device_of_b_cannot_reach_the_topics_of_a_device_of_a(
    server: Any, north: Town, south: Town
) -> None:
    lamp = Paho(server.port, **signed(south.pk, south.lamp, south.secrets[south.lamp])).connect()
    try:
        theirs = f"/sys/{north.pk}/{north.lamp}/thing/event/property/post"
        (code,) = lamp.subscribe(f"/sys/{north.pk}/{north.lamp}/#", 1)
        assert code >= 0x80, "a subscription to another device's topics is refused"
        body = {"id": "1", "version": "1.0", "params": {"Brightness": 99}}
        answer = lamp.publish(theirs, json.dumps(body), 1)
        assert answer is None or answer >= 0x80, "a publish on another device's topic"
    finally:
        lamp.stop()
    with client(server, north.tokens["admin"]) as a:
        path = f"/api/products/{north.pk}/devices/{north.lamp}/properties"
        assert a.get(path).json()["Brightness"]["value"] != 99


def live(server: Any, token: str) -> Any:
    return connect(
        f"ws://127.0.0.1:{server.ports['http']}/api/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
    )


def messages(socket: Any) -> Iterator[dict[str, Any]]:
    """The socket's messages one by one: a frame's, or a batch's items (docs/api-live.md)."""
    while True:
        found: dict[str, Any] = json.loads(socket.recv(timeout=10))
        yield from found["items"] if found.get("type") == "batch" else [found]


def test_the_live_feed_of_b_carries_nothing_of_a(server: Any, north: Town, south: Town) -> None:
    with live(server, south.tokens["admin"]) as socket:
        heard = messages(socket)
        for number, topic in enumerate(("properties", "status", "alarms", "commands")):
            socket.send(json.dumps({"op": "subscribe", "id": f"s{number}", "topic": topic}))
            assert next(heard)["type"] == "subscribed"
        for scope in ({"product": north.pk}, {"group": north.group}):
            socket.send(json.dumps({"op": "subscribe", "id": "x", "topic": "properties", **scope}))
            refused = next(heard)
            assert refused["type"] == "error" and "may see" in refused["detail"], refused
        # A's lamp connects, posts and goes; A raises an alarm and sends a command
        post_value(server, north, north.lamp, 43).stop()
        with client(server, north.tokens["operator"]) as a:
            a.post(
                "/api/alarms",
                json={"productKey": north.pk, "deviceName": north.lamp, "type": "live"},
            )
            target = {"productKey": north.pk, "deviceName": north.lamps[1]}
            a.post("/api/commands", json={"target": target, "set": {"Brightness": 2}})
        # then B's own lamp: every frame before its post is B's too
        post_value(server, south, south.lamp, 44).stop()
        while True:
            got = next(heard)
            assert north.pk not in json.dumps(got), got
            if got["type"] == "properties" and got["values"] == {"Brightness": 44}:
                break


def test_a_clinic_viewer_hears_only_its_group_live(server: Any, north: Town) -> None:
    with live(server, north.tokens["clinic"]) as socket:
        heard = messages(socket)
        socket.send(json.dumps({"op": "subscribe", "id": "p", "topic": "properties"}))
        assert next(heard)["type"] == "subscribed"
        outside = Paho(
            server.port, **signed(north.pk, north.lamps[1], north.secrets[north.lamps[1]])
        ).connect()
        try:
            body = {"id": "1", "version": "1.0", "params": {"Brightness": 7}}
            topic = f"/sys/{north.pk}/{north.lamps[1]}/thing/event/property/post"
            assert outside.publish(topic, json.dumps(body), 1) == 0
        finally:
            outside.stop()
        post_value(server, north, north.lamp, 45).stop()
        got = next(heard)
        assert got["device"] == f"{north.pk}/{north.lamp}", got


def test_a_route_of_b_hears_no_alarm_of_a(server: Any, north: Town, south: Town) -> None:
    receiver = WebhookReceiver()
    try:
        with client(server, south.tokens["admin"]) as b:
            route = {"name": "south-hook", "kind": "webhook", "url": receiver.url}
            made = b.post("/api/alarm-notifications", json=route)
            assert made.status_code == 201, made.text
        for town, kind in ((north, "north-only"), (south, "south-own")):
            with client(server, town.tokens["operator"]) as operator:
                alarm = {"productKey": town.pk, "deviceName": town.lamp, "type": kind}
                assert operator.post("/api/alarms", json=alarm).status_code == 201
        _, body = receiver.get()
        assert json.loads(body)["type"] == "south-own", body
    finally:
        receiver.close()


def test_a_rule_of_b_cannot_republish_onto_a_device_topic_of_a(
    server: Any, north: Town, south: Town
) -> None:
    theirs = f"/sys/{north.pk}/{north.lamps[1]}/thing/service/property/set"
    rule = {
        "name": "south-meddle",
        "sql": f'SELECT * FROM "/sys/{south.pk}/#"',
        "actions": [{"type": "republish", "topic": theirs}],
    }
    with client(server, south.tokens["operator"]) as b:
        made = b.post("/api/rules", json=rule)
        assert made.status_code == 201, made.text
        trace = f"/api/rules/{made.json()['id']}/trace"
        lamp = Paho(
            server.port, **signed(north.pk, north.lamps[1], north.secrets[north.lamps[1]])
        ).connect()
        try:
            lamp.subscribe(f"/sys/{north.pk}/{north.lamps[1]}/thing/service/#", 1)
            post_value(server, south, south.lamp, 46).stop()
            eventually(lambda: b.get(trace).json()["counters"]["failed"] > 0, what="refused")
            assert "not a topic of this tenant's" in b.get(trace).text
            assert lamp.messages.empty(), "A's lamp was sent B's republish"
        finally:
            lamp.stop()
            b.delete(trace.removesuffix("/trace"))


def test_a_fan_out_reaches_only_the_devices_its_sender_sees(server: Any, north: Town) -> None:
    with client(server, north.tokens["admin"]) as admin:
        key = admin.post(
            "/api/keys", json={"name": "ward-key", "role": "operator", "groups": [north.group]}
        ).json()["key"]
    with client(server, key) as ward:
        every = {"target": {"productKey": north.pk}, "set": {"Brightness": 3}, "ttl": 60}
        batch = ward.post("/api/commands", json=every)
        assert batch.status_code == 202, batch.text
        assert batch.json()["total"] == 1, "the product's lamps in the ward's group alone"
        outside = {"productKey": north.pk, "deviceName": north.lamps[1]}
        one = ward.post("/api/commands", json={"target": outside, "set": {"Brightness": 3}})
        assert one.status_code == 404


def test_a_batch_across_tenants_shows_each_tenant_its_own_commands_alone(
    server: Any, north: Town, south: Town
) -> None:
    with client(server, admin_token(server)) as system:
        for town in (north, south):
            for lamp in town.lamps:
                path = f"/api/products/{town.pk}/devices/{lamp}"
                assert system.patch(path, json={"tags": {"street": "main"}}).status_code == 200
        every = {"target": {"tag": "street:main"}, "set": {"Brightness": 8}, "ttl": 3600}
        sent = system.post("/api/commands", json=every)
        assert sent.status_code == 202, sent.text
        batch = f"/api/command-batches/{sent.json()['id']}"
        assert system.get(batch).json()["total"] == 4
    for token, seen in ((north.tokens["admin"], 2), (south.tokens["viewer"], 2)):
        with client(server, token) as tenant:
            shown = tenant.get(batch).json()
            assert shown["total"] == seen, "the other town's lamps are not counted"
            assert sum(shown["counts"].values()) == seen
            assert shown["target"] == {"tag": "street:main"}
    with client(server, north.tokens["clinic"]) as clinic:
        shown = clinic.get(batch).json()
        assert (shown["total"], sum(shown["counts"].values())) == (1, 1), "its group's lamp"


def test_a_batch_to_a_group_out_of_sight_shows_no_target(server: Any, north: Town) -> None:
    with client(server, north.tokens["admin"]) as admin:
        assert admin.post("/api/groups", json={"name": "north_poles"}).status_code == 201
        member = {"productKey": north.pk, "deviceName": north.lamp}
        added = admin.post("/api/groups/north_poles/devices", json={"devices": [member]})
        assert added.status_code in (200, 201), added.text
        every = {"target": {"group": "north_poles"}, "set": {"Brightness": 9}, "ttl": 3600}
        sent = admin.post("/api/commands", json=every)
        assert sent.status_code == 202, sent.text
        batch = f"/api/command-batches/{sent.json()['id']}"
        assert admin.get(batch).json()["target"] == {"group": "north_poles"}
    try:
        with client(server, north.tokens["clinic"]) as clinic:
            shown = clinic.get(batch).json()
            assert shown["target"] == {}, "a group the clinic viewer does not see is not named"
            assert shown["total"] == 1
    finally:
        with client(server, north.tokens["admin"]) as admin:
            admin.delete("/api/groups/north_poles")
