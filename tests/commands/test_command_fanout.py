"""One command to many devices on a real server: a group of fifty Alink lamps switched as a
batch, never more commands out than the pacing allows (seen from the lamps' side: they hold
their answers), its progress counted; a product, a tag and a district as targets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from alibaba_device import lamps as streetlights
from broker_peers import eventually
from command_devices import Lamp
from hongshan.things.model import Location
from thingsboard_device import rest


@pytest.fixture
def lamps() -> Iterator[Callable[..., Lamp]]:
    made: list[Lamp] = []

    def make(server: Any, pk: str, dn: str, secret: str, **kwargs: Any) -> Lamp:
        lamp = Lamp(server.port, pk, dn, secret, **kwargs).connect()
        made.append(lamp)
        return lamp

    yield make
    for lamp in made:
        lamp.stop()


def progress(api: httpx.Client, batch_id: int) -> dict[str, int]:
    response = api.get(f"/api/command-batches/{batch_id}")
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["counts"]
    return counts


def test_a_group_of_fifty_is_switched_paced(
    make_server: Callable[..., Any], lamps: Callable[..., Lamp]
) -> None:
    server = make_server(command_max_in_flight=5)
    names = [f"lamp-{n:02}" for n in range(50)]
    pk, secrets = streetlights(server, *names, "lamp-elsewhere")
    with rest(server) as api:
        made = api.post("/api/groups", json={"name": "street_1"})
        assert made.status_code == 201, made.text
        members = [{"productKey": pk, "deviceName": name} for name in names]
        added = api.post("/api/groups/street_1/devices", json={"devices": members})
        assert added.status_code == 200, added.text
        street = [lamps(server, pk, name, secrets[name], answering=False) for name in names]
        elsewhere = lamps(server, pk, "lamp-elsewhere", secrets["lamp-elsewhere"])
        sent = api.post(
            "/api/commands",
            json={"target": {"group": "street_1"}, "set": {"LightSwitch": 1}, "wait": 8},
        )
        assert sent.status_code == 202, sent.text
        batch = sent.json()
        assert batch["total"] == 50 and batch["counts"] == {"queued": 50}
        assert batch["target"] == {"group": "street_1"} and batch["wait"] == 8.0

        # the lamps hold their answers: five commands are out, and no more go
        eventually(lambda: progress(api, batch["id"]).get("sent") == 5, what="five sent")
        eventually(lambda: sum(lamp.received.qsize() for lamp in street) == 5, what="5 calls")
        assert progress(api, batch["id"]) == {"sent": 5, "queued": 45}
        assert server.call(lambda: server.platform.fan_out.in_flight) == 5
        for lamp in street:
            lamp.answer_held()
        eventually(lambda: progress(api, batch["id"]) == {"replied": 50}, what="all replied")
        assert server.call(lambda: server.platform.fan_out.most_in_flight) == 5
        assert all(lamp.received.qsize() == 1 for lamp in street)
        assert elsewhere.received.empty()
        listed = api.get("/api/commands", params={"batch": batch["id"], "limit": 100}).json()
        assert sorted(c["deviceName"] for c in listed["items"]) == names
        assert {c["state"] for c in listed["items"]} == {"replied"}


def test_a_product_a_tag_and_a_district_choose_their_devices(
    server: Any, lamps: Callable[..., Lamp]
) -> None:
    pk, secrets = streetlights(server, "north-1", "north-2", "south-1")
    registry = server.platform.registry
    for name, district, tags in (
        ("north-1", "North", {"kind": "led"}),
        ("north-2", "North", {"kind": "sodium"}),
        ("south-1", "South", {"kind": "led"}),
    ):
        server.run(
            registry.update_device(
                pk, name, tags=tags, location=Location(lat=31.2, lon=121.5, district=district)
            )
        )
    on = {name: lamps(server, pk, name, secret) for name, secret in secrets.items()}
    with rest(server) as api:

        def switched(target: dict[str, Any]) -> list[str]:
            sent = api.post("/api/commands", json={"target": target, "set": {"LightSwitch": 0}})
            assert sent.status_code == 202, sent.text
            batch = sent.json()
            eventually(lambda: progress(api, batch["id"]).get("replied") == batch["total"])
            items = api.get("/api/commands", params={"batch": batch["id"]}).json()["items"]
            return sorted(item["deviceName"] for item in items)

        assert switched({"productKey": pk}) == ["north-1", "north-2", "south-1"]
        assert switched({"tag": "kind:led"}) == ["north-1", "south-1"]
        assert switched({"tag": "kind:led", "productKey": pk}) == ["north-1", "south-1"]
        assert switched({"district": "North"}) == ["north-1", "north-2"]
        assert on["north-1"].received.qsize() == 4 and on["north-2"].received.qsize() == 2
        refused = api.post(
            "/api/commands", json={"target": {"tag": "kind:none"}, "set": {"LightSwitch": 0}}
        )
        assert refused.status_code == 404 and "has no device" in refused.json()["detail"]
        # a call that does not fit the thing model is refused for the batch: nothing is kept
        kept = len(api.get("/api/commands").json()["items"])
        empty = api.post("/api/commands", json={"target": {"productKey": pk}, "set": {}})
        assert empty.status_code == 400 and empty.json()["problems"][0]["kind"] == "invalid"
        assert len(api.get("/api/commands").json()["items"]) == kept


def test_offline_members_of_a_batch_fail_or_wait_queued(
    server: Any, lamps: Callable[..., Lamp]
) -> None:
    pk, secrets = streetlights(server, "lamp-1", "lamp-2")
    lamps(server, pk, "lamp-1", secrets["lamp-1"])
    with rest(server) as api:
        product = {"productKey": pk}
        failing = api.post("/api/commands", json={"target": product, "set": {"LightSwitch": 1}})
        batch = failing.json()
        eventually(lambda: progress(api, batch["id"]) == {"replied": 1, "failed": 1})
        waiting = api.post(
            "/api/commands", json={"target": product, "set": {"LightSwitch": 0}, "ttl": 600}
        ).json()
        eventually(lambda: progress(api, waiting["id"]) == {"replied": 1, "queued": 1})
        late = lamps(server, pk, "lamp-2", secrets["lamp-2"])
        eventually(lambda: progress(api, waiting["id"]) == {"replied": 2})
        assert late.next_call()["params"] == {"LightSwitch": 0}


def test_a_rule_switches_a_group_and_its_commands_say_so(
    server: Any, lamps: Callable[..., Lamp], paho_client: Any
) -> None:
    names = [f"lamp-{n}" for n in range(4)]
    pk, secrets = streetlights(server, "switch", *names)
    street = [lamps(server, pk, name, secrets[name]) for name in names]
    switch = lamps(server, pk, "switch", secrets["switch"])
    with rest(server) as api:
        assert api.post("/api/groups", json={"name": "street_2"}).status_code == 201
        members = [{"productKey": pk, "deviceName": name} for name in names]
        api.post("/api/groups/street_2/devices", json={"devices": members}).raise_for_status()
        sql = (
            "SELECT items.LightSwitch.value AS LightSwitch "
            f'FROM "/{pk}/switch/thing/event/property/post"'
        )
        made = api.post(
            "/api/rules",
            json={
                "name": "street follows the switch",
                "sql": sql,
                "actions": [
                    {"type": "set", "group": "street_2"},
                    {"type": "set", "productKey": pk, "deviceName": "lamp-0"},
                ],
            },
        )
        assert made.status_code == 201, made.text
        rule = made.json()
        assert rule["actions"][0] == {"type": "set", "group": "street_2"}
        body = {"id": "1", "version": "1.0", "params": {"LightSwitch": 1}}
        topic = f"/sys/{pk}/switch/thing/event/property/post"
        assert switch.paho.publish(topic, json.dumps(body), 1) == 0
        assert [lamp.next_call()["params"] for lamp in street] == [{"LightSwitch": 1}] * 4
        assert street[0].next_call()["params"] == {"LightSwitch": 1}  # (the one-device action)
        origin = f"rule:{rule['id']}"

        def replied() -> list[dict[str, Any]]:
            found = api.get("/api/commands", params={"origin": origin}).json()["items"]
            return [c for c in found if c["state"] in ("replied", "sent")]

        eventually(lambda: len(replied()) == 5, what="five commands of the rule")
        batches = {c["batch"] for c in replied()}
        assert len(batches - {None}) == 1
        refused = api.post(
            "/api/rules",
            json={
                "name": "bad",
                "sql": sql,
                "actions": [{"type": "set", "group": "a", "tag": "b:c"}],
            },
        )
        assert refused.status_code == 400 and "set: target" in refused.json()["detail"]
