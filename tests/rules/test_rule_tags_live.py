"""A rule's ``attribute(key)`` on a real server: paho Alink devices post, a rule reads the
posting device's tags in its SELECT and its WHERE, a tag changed over REST is read by the next
post with no restart, a device's raw publish reads its tags too, a backtest reads the tags as
they are now, and a restart keeps them (SQLite and PostgreSQL registry)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from test_rule_engine import create, watch

from alibaba_device import lamps, online, post
from broker_peers import Paho, eventually
from hongshan.things.model import TopicClass
from registry_databases import RegistryDatabase
from server_thread import ServerThread
from thingsboard_device import rest


def tag(api: httpx.Client, pk: str, name: str, **change: Any) -> None:
    changed = api.patch(f"/api/products/{pk}/devices/{name}", json=change)
    assert changed.status_code == 200, changed.text


def test_attribute_reads_the_devices_tags_as_they_are_at_each_message(
    make_server: Callable[..., ServerThread], paho_client: Any, registry_db: RegistryDatabase
) -> None:
    url = registry_db.setting
    server = make_server(registry_url=url)
    pk, secrets = lamps(server, "lamp-a", "lamp-b")
    report = TopicClass(pattern="/${productKey}/${deviceName}/user/report", right="pub")
    server.run(server.platform.registry.update_product(pk, topic_classes=[report]))
    sql = (
        "SELECT deviceName() AS device, attribute('district') AS d "
        f"FROM \"/{pk}/+/thing/event/property/post\" WHERE attribute('kind') = 'led'"
    )
    raw = (
        "SELECT deviceName() AS device, attribute('district') AS d, n "
        f"FROM \"/{pk}/+/user/report\" WHERE attribute('kind') = 'led'"
    )
    with rest(server) as api:
        tag(api, pk, "lamp-a", tags={"kind": "led", "district": "north"})
        tag(api, pk, "lamp-b", tags={"kind": "sodium", "district": "east"})
        rule = {"name": "leds", "sql": sql}
        fed = "SELECT attribute('district') AS d, attribute('kind') AS k FROM \"town/never\""
        create(api, name="fed", sql=fed, actions=[{"type": "republish", "topic": "fed/leds"}])
        republish = {"type": "republish", "topic": "town/leds", "qos": 1}
        create(api, **rule, actions=[republish, {"type": "rule", "rule": "fed"}])
        create(api, name="raw", sql=raw, actions=[{"type": "republish", "topic": "town/raw"}])
        watcher = watch(server, paho_client, "town/#")
        fed_watcher = watch(server, paho_client, "fed/#")
        clients = {name: online(server, paho_client, pk, name, secrets[name]) for name in secrets}

        def heard(name: str, n: int) -> dict[str, Any]:
            post(clients[name], pk, name, {"Brightness": n})
            got: dict[str, Any] = json.loads(watcher.get().payload)
            return got

        started = int(time.time() * 1000)
        post(clients["lamp-b"], pk, "lamp-b", {"Brightness": 10})  # (no LED: no republish)
        assert heard("lamp-a", 10) == {"device": "lamp-a", "d": "north"}
        # a rule handed the output speaks for the same device: its tags too
        assert json.loads(fed_watcher.get().payload) == {"d": "north", "k": "led"}
        # changed over REST: the next post reads the new tags
        tag(api, pk, "lamp-a", tags={"district": "south"})
        tag(api, pk, "lamp-b", tags={"kind": "led"}, removeTags=["district"])
        assert heard("lamp-a", 20) == {"device": "lamp-a", "d": "south"}
        assert heard("lamp-b", 30) == {"device": "lamp-b"}  # (no district: no d)
        tag(api, pk, "lamp-a", removeTags=["kind"])
        post(clients["lamp-a"], pk, "lamp-a", {"Brightness": 40})  # (no LED now)
        assert heard("lamp-b", 40) == {"device": "lamp-b"}
        # a raw publish on a topic naming the device reads its tags too
        lamp_b: Paho = clients["lamp-b"]
        lamp_b.publish(f"/{pk}/lamp-b/user/report", b'{"n": 1}', 1)
        message = watcher.get()
        assert message.topic == "town/raw"
        assert json.loads(message.payload) == {"device": "lamp-b", "n": 1}
        # a backtest reads the tags as they are now (the history keeps none)
        found: dict[str, Any] = {}

        def replayed() -> bool:
            asked = {"rule": rule, "from": started, "to": int(time.time() * 1000) + 1}
            found.update(api.post("/api/rules/backtest", json=asked).json())
            return bool(found.get("rule", {}).get("matched") == 6)

        eventually(replayed, what="the six posts in the history")
        outputs = [fire["output"] for fire in found["rule"]["fires"]]
        assert outputs == [{"device": "lamp-b"}] * 3  # (lamp-b is the LED now, lamp-a not)
        tag(api, pk, "lamp-b", tags={"district": "west"})
    for client in clients.values():
        client.stop()
    server.stop()
    # kept across a restart
    server = make_server(registry_url=url)
    watcher = watch(server, paho_client, "town/leds")
    lamp = online(server, paho_client, pk, "lamp-b", secrets["lamp-b"])
    post(lamp, pk, "lamp-b", {"Brightness": 50})
    assert json.loads(watcher.get().payload) == {"device": "lamp-b", "d": "west"}
