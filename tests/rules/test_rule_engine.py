"""Rules running live on a real server: devices on paho clients, rules made through the REST
API, their actions seen by a subscriber, a device and a real HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from alibaba_device import lamps, online, post
from broker_peers import Paho, eventually
from hongshan.services.rules.engine import MAX_DEPTH
from thingsboard_device import make_tb_device, make_tb_product, rest
from webhook_receiver import WebhookReceiver


@pytest.fixture
def receivers() -> Iterator[Callable[..., WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make(statuses: list[int] | None = None) -> WebhookReceiver:
        receiver = WebhookReceiver(statuses or [])
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def create(api: httpx.Client, **rule: Any) -> dict[str, Any]:
    response = api.post("/api/rules", json=rule)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def watch(server: Any, paho_client: Any, topic: str) -> Paho:
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe(topic, 1) == [1]
    return watcher


def test_an_alink_post_fires_an_alibaba_rule_that_republishes(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "lamp-0001")
    watcher = watch(server, paho_client, "town/#")
    sql = (
        "SELECT deviceName() AS device, items.Brightness.value AS brightness "
        f'FROM "/{pk}/+/thing/event/property/post" WHERE items.LightSwitch.value = 1'
    )
    republish = [{"type": "republish", "topic": "town/lamps/${device}", "qos": 1}]
    create(api, name="lamp on", sql=sql, actions=republish)
    whole = f'SELECT * FROM "/{pk}/+/thing/event/property/post"'
    to_raw = [{"type": "republish", "topic": "town/raw"}]
    create(api, name="as Alibaba gives it", sql=whole, actions=to_raw)
    own = f'SELECT * FROM "/sys/{pk}/+/thing/event/property/post"'
    create(
        api,
        name="on the device's topic",
        sql=own,
        actions=[{"type": "republish", "topic": "town/sys"}],
    )
    lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1, "Brightness": 80})
    got = {message.topic: json.loads(message.payload) for message in watcher.take(3)}
    assert got["town/lamps/lamp-0001"] == {"device": "lamp-0001", "brightness": 80}
    data = got["town/raw"]
    assert data["iotId"] == f"{pk}.lamp-0001" and data["requestId"] == "1"
    assert (data["productKey"], data["deviceName"]) == (pk, "lamp-0001")
    assert set(data["items"]) == {"LightSwitch", "Brightness"}
    assert data["items"]["Brightness"]["value"] == 80
    assert data["items"]["Brightness"]["time"] == data["gmtCreate"]
    # on the device's own topic too, a rule reads the thing-model data, never its Alink JSON
    assert got["town/sys"] == data
    post(lamp, pk, "lamp-0001", {"LightSwitch": 0, "Brightness": 10})
    assert sorted(m.topic for m in watcher.take(2)) == ["town/raw", "town/sys"]


def test_thingsboard_telemetry_fires_a_things_rule_and_an_alibaba_one(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-1")
    watcher = watch(server, paho_client, "town/#")
    neutral = (
        "SELECT deviceName() AS device, values.temperature AS t "
        f'FROM "$things/{pk}/+/properties" WHERE values.temperature > 38'
    )
    create(
        api, name="hot", sql=neutral, actions=[{"type": "republish", "topic": "town/hot/${device}"}]
    )
    alibaba = f'SELECT items.temperature.value AS t FROM "/{pk}/+/thing/event/property/post"'
    create(
        api,
        name="as on Alibaba",
        sql=alibaba,
        actions=[{"type": "republish", "topic": "town/alibaba"}],
    )
    device: Paho = paho_client(server.port, username=token).connect()
    assert device.publish("v1/devices/me/telemetry", json.dumps({"temperature": 39.5}), 1) == 0
    got = {message.topic: json.loads(message.payload) for message in watcher.take(2)}
    assert got == {
        "town/hot/thermostat-1": {"device": "thermostat-1", "t": 39.5},
        "town/alibaba": {"t": 39.5},
    }


def test_a_webhook_gets_a_signed_body_and_a_failing_one_reaches_the_error_action(
    server: Any,
    paho_client: Any,
    api: httpx.Client,
    receivers: Callable[..., WebhookReceiver],
) -> None:
    pk, secrets = lamps(server, "lamp-0001")
    good, bad = receivers(), receivers([503] * 10)
    watcher = watch(server, paho_client, "town/#")
    sql = (
        "SELECT deviceName() AS device, items.Brightness.value AS brightness "
        f'FROM "/{pk}/+/thing/event/property/post"'
    )
    actions = [
        {"type": "webhook", "url": good.url},
        {"type": "webhook", "url": bad.url, "retries": 2, "backoff": 0.05},
        {"type": "republish", "topic": "town/ok"},
    ]
    rule = create(
        api,
        name="hooks",
        sql=sql,
        actions=actions,
        errorAction={"type": "republish", "topic": "town/errors"},
    )
    lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
    post(lamp, pk, "lamp-0001", {"Brightness": 55})
    headers, body = good.get()
    assert json.loads(body) == {"device": "lamp-0001", "brightness": 55}
    expected = hmac.new(rule["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hongshan-Signature"] == f"sha256={expected}"
    assert headers["X-Hongshan-Rule"] == str(rule["id"])
    assert headers["Content-Type"] == "application/json"
    got = {message.topic: json.loads(message.payload) for message in watcher.take(2)}
    assert got["town/ok"] == {"device": "lamp-0001", "brightness": 55}
    report = got["town/errors"]
    assert report["ruleId"] == rule["id"] and report["action"] == "webhook"
    assert report["error"] == f"webhook {bad.url}: HTTP 503 after 3 tries"
    assert report["topic"] == f"/{pk}/lamp-0001/thing/event/property/post"
    assert report["payload"]["items"]["Brightness"]["value"] == 55
    assert report["output"] == {"device": "lamp-0001", "brightness": 55}
    assert bad.count == 3
    trace = api.get(f"/api/rules/{rule['id']}/trace").json()
    assert trace["counters"]["fired"] == 1 and trace["counters"]["failed"] == 1
    assert trace["failures"][0]["action"] == "webhook"
    assert trace["runs"][0]["errors"] == [report["action"] + ": " + report["error"]]


def test_a_webhook_refused_with_a_4xx_is_not_tried_again(
    server: Any, paho_client: Any, api: httpx.Client, receivers: Callable[..., WebhookReceiver]
) -> None:
    refusing = receivers([404])
    watcher = watch(server, paho_client, "town/errors")
    create(
        api,
        name="refused",
        sql='SELECT * FROM "town/in"',
        actions=[{"type": "webhook", "url": refusing.url, "backoff": 0.05}],
        errorAction={"type": "republish", "topic": "town/errors"},
    )
    sender: Paho = paho_client(server.port).connect()
    sender.publish("town/in", b'{"a": 1}', 1)
    report = json.loads(watcher.get().payload)
    assert report["error"].endswith("HTTP 404 after 1 try") and report["payload"] == {"a": 1}
    assert refusing.count == 1


def test_a_rule_sets_a_property_on_another_device(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "lamp-a", "lamp-b")
    lamp_b = online(server, paho_client, pk, "lamp-b", secrets["lamp-b"])
    set_topic = f"/sys/{pk}/lamp-b/thing/service/property/set"
    assert lamp_b.subscribe(set_topic, 1) == [1]
    sql = (
        "SELECT items.LightSwitch.value AS LightSwitch "
        f'FROM "/{pk}/lamp-a/thing/event/property/post"'
    )
    create(
        api,
        name="b follows a",
        sql=sql,
        actions=[{"type": "set", "productKey": pk, "deviceName": "lamp-b"}],
    )
    lamp_a = online(server, paho_client, pk, "lamp-a", secrets["lamp-a"])
    post(lamp_a, pk, "lamp-a", {"LightSwitch": 1})
    command = json.loads(lamp_b.until(set_topic)[-1].payload)
    assert command["params"] == {"LightSwitch": 1}
    assert command["method"] == "thing.service.property.set"


def test_the_trace_says_which_condition_stopped_a_rule(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, secrets = lamps(server, "lamp-0001")
    sql = (
        f'SELECT * FROM "/{pk}/+/thing/event/property/post" '
        "WHERE items.LightSwitch.value = 1 AND items.Brightness.value > 50"
    )
    rule = create(api, name="bright", sql=sql, actions=[{"type": "republish", "topic": "town/x"}])
    lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1, "Brightness": 20})
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1})
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1, "Brightness": 90})
    trace = api.get(f"/api/rules/{rule['id']}/trace").json()
    assert trace["running"] is True
    assert trace["counters"]["matched"] == 3 and trace["counters"]["fired"] == 1
    assert trace["counters"]["notRun"] == 2
    missing, dim = trace["nonRuns"]  # (newest first)
    assert dim["reason"] == "where" and dim["condition"] == "items.Brightness.value > 50"
    assert dim["why"] == "items.Brightness.value > 50: false"
    assert missing["condition"] == "items.Brightness.value > 50"
    assert "undefined" in missing["why"]
    assert trace["runs"][0]["output"]["items"]["Brightness"]["value"] == 90


def test_a_rule_triggering_itself_stops_at_the_depth_limit_and_rates_are_limited(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    looping = create(
        api,
        name="loop",
        sql='SELECT * FROM "town/loop/#"',
        actions=[{"type": "republish", "topic": "town/loop/again"}],
    )
    limited = create(
        api,
        name="slow",
        sql='SELECT * FROM "town/rate"',
        actions=[{"type": "republish", "topic": "town/rated"}],
        maxPerSecond=0.01,
    )
    watcher = watch(server, paho_client, "town/#")
    sender: Paho = paho_client(server.port).connect()
    sender.publish("town/loop/start", b'{"n": 1}', 1)
    for _ in range(3):
        sender.publish("town/rate", b"{}", 1)
    got = [message.topic for message in watcher.take(1 + MAX_DEPTH + 1 + 3 + 1)]
    assert got.count("town/loop/again") == MAX_DEPTH + 1
    assert got.count("town/rated") == 1
    loop = api.get(f"/api/rules/{looping['id']}/trace").json()
    assert loop["counters"]["fired"] == MAX_DEPTH + 1 and loop["counters"]["looped"] == 1
    assert loop["nonRuns"][0]["reason"] == "depth_limit"
    rate = api.get(f"/api/rules/{limited['id']}/trace").json()
    assert rate["counters"]["fired"] == 1 and rate["counters"]["limited"] == 2
    assert rate["nonRuns"][0]["reason"] == "rate_limit"


def test_rules_survive_a_restart(make_server: Callable[..., Any], paho_client: Any) -> None:
    server = make_server()
    with rest(server) as api:
        kept = create(
            api,
            name="kept",
            sql='SELECT a FROM "town/in"',
            actions=[{"type": "republish", "topic": "town/out"}],
        )
        resting = create(api, name="resting", sql='SELECT * FROM "town/in"', enabled=False)
    server.stop()
    server = make_server()
    with rest(server) as api:
        listed = {rule["name"]: rule for rule in api.get("/api/rules").json()["items"]}
        assert listed["kept"]["enabled"] and not listed["resting"]["enabled"]
        assert listed["kept"]["id"] == kept["id"] and "secret" not in listed["kept"]
        shown = api.get(f"/api/rules/{kept['id']}", params={"secret": "true"}).json()
        assert shown["secret"] == kept["secret"]
        watcher = watch(server, paho_client, "town/out")
        sender: Paho = paho_client(server.port).connect()
        sender.publish("town/in", b'{"a": 7, "b": 8}', 1)
        assert json.loads(watcher.get().payload) == {"a": 7}
        assert api.get(f"/api/rules/{resting['id']}/trace").json()["running"] is False
        eventually(lambda: api.get(f"/api/rules/{kept['id']}/trace").json()["counters"]["fired"])
