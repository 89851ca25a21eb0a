"""Tracked commands on a real server: Alink lamps on paho clients, commands sent through
``/api/commands`` and followed there — replied, timed out and completed by a late reply,
failed, queued for an offline device and sent when it connects, expired, cancelled, kept
across a restart (the registry on SQLite and on PostgreSQL) — and the lifecycle's ends heard
by a rule on ``$things/…/commands``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from alibaba_device import lamps as streetlights
from broker_peers import Paho, eventually
from command_devices import Lamp
from registry_databases import RegistryDatabase
from thingsboard_device import make_tb_device, make_tb_product, rest


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


def send(api: httpx.Client, status: int = 201, **body: Any) -> dict[str, Any]:
    response = api.post("/api/commands", json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def one(pk: str, dn: str) -> dict[str, str]:
    return {"productKey": pk, "deviceName": dn}


def command(api: httpx.Client, command_id: int) -> dict[str, Any]:
    response = api.get(f"/api/commands/{command_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def in_state(api: httpx.Client, command_id: int, state: str) -> dict[str, Any]:
    eventually(lambda: command(api, command_id)["state"] == state, what=f"command {state}")
    return command(api, command_id)


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], (word, body)
    return body


def test_a_set_is_recorded_sent_and_replied(
    server: Any, api: httpx.Client, lamps: Callable[..., Lamp]
) -> None:
    pk, secrets = streetlights(server, "lamp-1")
    lamp = lamps(server, pk, "lamp-1", secrets["lamp-1"])
    body = send(api, target=one(pk, "lamp-1"), set={"LightSwitch": 1}, wait=5)
    assert body["state"] == "replied" and body["code"] == 200 and body["outcome"] == "replied"
    assert (
        body["origin"] == "api" and body["kind"] == "set" and body["params"] == {"LightSwitch": 1}
    )
    assert body["createdAt"] <= body["sentAt"] <= body["finishedAt"]
    assert lamp.next_call()["id"] == body["callId"]
    assert command(api, body["id"]) == body
    # the device endpoints' commands are recorded too
    answer = api.post(f"/api/products/{pk}/devices/lamp-1/services/SetSchedule", json={})
    assert answer.status_code == 200 and answer.json()["outcome"] == "replied", answer.text
    listed = api.get("/api/commands", params={"productKey": pk, "deviceName": "lamp-1"}).json()
    assert [(c["service"], c["state"]) for c in listed["items"]] == [
        ("SetSchedule", "replied"),
        ("set", "replied"),
    ]
    assert answer.json()["commandId"] == listed["items"][0]["id"]
    assert listed["items"][0]["callId"] == answer.json()["msgId"]
    assert api.get("/api/commands", params={"state": "failed"}).json()["items"] == []


def test_a_device_that_never_answers_times_out_and_a_late_reply_completes_it(
    server: Any, api: httpx.Client, lamps: Callable[..., Lamp], paho_client: Any
) -> None:
    pk, secrets = streetlights(server, "lamp-1")
    lamp = lamps(server, pk, "lamp-1", secrets["lamp-1"], answering=False)
    api.post(
        "/api/rules",
        json={
            "name": "ends",
            "sql": f"SELECT * FROM \"$things/{pk}/+/commands\" WHERE state <> 'sent'",
            "actions": [{"type": "republish", "topic": "town/commands"}],
        },
    ).raise_for_status()
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe("town/commands", 1) == [1]
    body = send(api, target=one(pk, "lamp-1"), set={"LightSwitch": 1}, wait=0.3)
    assert body["state"] == "timed_out" and body["outcome"] == "timed_out", body
    assert body["finishedAt"] is not None and body["callId"]
    heard = json.loads(watcher.until("town/commands")[-1].payload)
    assert heard["state"] == "timed_out" and heard["commandId"] == body["id"]
    assert heard["callId"] == body["callId"]
    lamp.answer_held()  # the reply comes after the caller stopped waiting
    late = in_state(api, body["id"], "replied")
    assert late["code"] == 200 and late["outcome"] == "replied"


def test_a_command_not_waited_for_times_out_when_no_reply_comes_in_time(
    make_server: Callable[..., Any], lamps: Callable[..., Lamp], paho_client: Any
) -> None:
    server = make_server(command_reply_timeout=0.5)
    pk, secrets = streetlights(server, "lamp-1")
    lamp = lamps(server, pk, "lamp-1", secrets["lamp-1"], answering=False)
    with rest(server) as api:
        body = send(api, target=one(pk, "lamp-1"), set={"LightSwitch": 1})  # (not waited for)
        assert body["state"] == "sent", body
        ended = in_state(api, body["id"], "timed_out")
        assert ended["message"] == "no reply in 0.5 s" and ended["finishedAt"] is not None
        lamp.answer_held()  # a reply after that still completes it
        assert in_state(api, body["id"], "replied")["code"] == 200


def test_a_command_to_an_offline_device_without_ttl_fails_at_once(
    server: Any, api: httpx.Client
) -> None:
    pk, _ = streetlights(server, "lamp-1")
    body = send(api, target=one(pk, "lamp-1"), set={"LightSwitch": 1})
    assert body["state"] == "failed" and body["outcome"] == "offline"
    assert body["code"] == 9200 and body["sentAt"] is None


def test_queued_commands_go_in_order_when_the_device_connects_and_others_expire(
    server: Any, api: httpx.Client, lamps: Callable[..., Lamp], paho_client: Any
) -> None:
    pk, secrets = streetlights(server, "lamp-1", "lamp-2")
    first = send(api, target=one(pk, "lamp-1"), set={"Brightness": 10}, ttl=600, wait=5)
    second = send(api, target=one(pk, "lamp-1"), set={"Brightness": 20}, ttl=600, wait=5)
    assert first["state"] == second["state"] == "queued"
    assert first["expiresAt"] == first["createdAt"] + 600_000
    api.post(
        "/api/rules",
        json={
            "name": "expired",
            "sql": f'SELECT * FROM "$things/{pk}/lamp-2/commands"',
            "actions": [{"type": "republish", "topic": "town/expired"}],
        },
    ).raise_for_status()
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe("town/expired", 1) == [1]
    expiring = send(api, target=one(pk, "lamp-2"), set={"Brightness": 30}, ttl=0.2)
    assert expiring["state"] == "queued"
    lamp = lamps(server, pk, "lamp-1", secrets["lamp-1"])
    assert lamp.next_call()["params"] == {"Brightness": 10}
    assert lamp.next_call()["params"] == {"Brightness": 20}
    went = in_state(api, first["id"], "replied")
    assert went["code"] == 200
    assert in_state(api, second["id"], "replied")["sentAt"] >= went["finishedAt"]
    expired = in_state(api, expiring["id"], "expired")
    assert expired["outcome"] == "expired" and expired["sentAt"] is None
    heard = json.loads(watcher.until("town/expired")[-1].payload)
    assert heard["state"] == "expired" and heard["commandId"] == expiring["id"]
    # lamp-2 comes: nothing is sent to it
    late = lamps(server, pk, "lamp-2", secrets["lamp-2"])
    fresh = send(api, target=one(pk, "lamp-2"), set={"Brightness": 40}, wait=5)
    assert fresh["state"] == "replied"
    assert late.next_call()["params"] == {"Brightness": 40}


def test_a_queued_command_can_be_cancelled_once(server: Any, api: httpx.Client) -> None:
    pk, _ = streetlights(server, "lamp-1")
    body = send(api, target=one(pk, "lamp-1"), set={"LightSwitch": 0}, ttl=600)
    cancelled = api.post(f"/api/commands/{body['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert command(api, body["id"])["state"] == "cancelled"
    problem(api.post(f"/api/commands/{body['id']}/cancel"), 409, "only a queued command")
    problem(api.post("/api/commands/999999/cancel"), 404, "no command 999999")
    problem(api.get("/api/commands/999999"), 404, "no command 999999")


def test_the_queue_outlives_a_restart(
    make_server: Callable[..., Any], lamps: Callable[..., Lamp], registry_db: RegistryDatabase
) -> None:
    server = make_server(registry_url=registry_db.setting)
    pk, secrets = streetlights(server, "lamp-1")
    with rest(server) as api:
        queued = send(api, target=one(pk, "lamp-1"), set={"Brightness": 55}, ttl=600, wait=5)
    assert queued["state"] == "queued"
    server.stop()
    again = make_server(registry_url=registry_db.setting)
    with rest(again) as api:
        assert command(api, queued["id"])["state"] == "queued"
        lamp = lamps(again, pk, "lamp-1", secrets["lamp-1"])
        assert lamp.next_call()["params"] == {"Brightness": 55}
        assert in_state(api, queued["id"], "replied")["code"] == 200


def test_bad_commands_are_refused_naming_what_was_wrong(server: Any, api: httpx.Client) -> None:
    pk, _ = streetlights(server, "lamp-1")
    target = one(pk, "lamp-1")

    def refused(status: int, body: dict[str, Any], *words: str) -> dict[str, Any]:
        return problem(api.post("/api/commands", json=body), status, *words)

    refused(400, {"target": target}, "set", "call")
    refused(400, {"target": target, "set": {}, "call": {"service": "Reboot"}}, "one of")
    found = refused(400, {"target": target, "set": {"Brightness": 999}}, "Brightness")
    assert found["problems"][0]["kind"] == "int_out_of_range"
    refused(400, {"target": target, "call": {"service": "Explode"}}, "Explode")
    refused(400, {"target": target, "set": {"LightSwitch": 1}, "wait": 99}, "wait")
    refused(400, {"target": target, "set": {"LightSwitch": 1}, "ttl": -1}, "ttl")
    refused(400, {"target": {"deviceName": "lamp-1"}, "set": {"LightSwitch": 1}}, "productKey")
    refused(400, {"target": {"group": "a", "tag": "b:c"}, "set": {"LightSwitch": 1}}, "one of")
    refused(400, {"target": {"tag": "nocolon"}, "set": {"LightSwitch": 1}}, "key:value")
    refused(400, {"target": target, "set": {"LightSwitch": 1}, "origin": "rule:1"}, "origin")
    refused(404, {"target": one(pk, "lamp-9"), "set": {"LightSwitch": 1}}, "lamp-9")
    refused(404, {"target": {"group": "nowhere"}, "set": {"LightSwitch": 1}}, "nowhere")
    refused(404, {"target": {"district": "Atlantis"}, "set": {"LightSwitch": 1}}, "Atlantis")
    refused(404, {"target": {"productKey": "a1NoSuch"}, "set": {"LightSwitch": 1}}, "a1NoSuch")
    problem(api.get("/api/commands", params={"state": "lost"}), 400, "lost")
    problem(api.get("/api/command-batches/12345"), 404, "12345")
    problem(api.get(f"/api/command-batches/{2**73}"), 404, "batch")  # (no 500: no such id)
    problem(api.get("/api/commands", params={"batch": 2**64}), 400, "batch")  # (no 500)
    assert api.get("/api/commands").json()["items"] == []  # nothing refused was kept


def test_the_openapi_document_has_the_commands(api: httpx.Client) -> None:
    paths = api.get("/api/schema/openapi.json").json()["paths"]
    sent = paths["/api/commands"]["post"]["responses"]
    assert {"201", "202", "400", "404"} <= set(sent)
    assert sent["202"]["content"]["application/json"]["schema"]["$ref"].endswith("CommandBatch")
    assert "409" in paths["/api/commands/{command_id}/cancel"]["post"]["responses"]
    assert "get" in paths["/api/command-batches/{batch_id}"]


def test_a_thingsboard_devices_queued_rpc_goes_when_it_connects(
    server: Any, api: httpx.Client, paho_client: Any
) -> None:
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-1")
    queued = send(
        api, target=one(pk, "thermostat-1"), call={"service": "setLight", "params": {"on": 1}},
        ttl=600, wait=5,
    )  # fmt: skip
    shared = send(api, target=one(pk, "thermostat-1"), set={"level": 40}, ttl=600)
    assert queued["state"] == shared["state"] == "queued"
    device: Paho = paho_client(server.port, username=token).connect()
    request = device.get()
    assert request.topic.startswith("v1/devices/me/rpc/request/")
    assert json.loads(request.payload) == {"method": "setLight", "params": {"on": True}}
    request_id = request.topic.rsplit("/", 1)[1]
    device.publish(f"v1/devices/me/rpc/response/{request_id}", json.dumps({"done": True}), 1)
    replied = in_state(api, queued["id"], "replied")
    assert replied["output"] == {"done": 1} and replied["callId"] == request_id
    update = device.get()  # a shared attribute update is not answered: it stays sent
    assert update.topic == "v1/devices/me/attributes" and json.loads(update.payload) == {
        "level": 40
    }
    assert in_state(api, shared["id"], "sent")["outcome"] == "sent"
    # an RPC the device answers after the wait: timed out, then replied
    late = send(
        api, target=one(pk, "thermostat-1"), call={"service": "reboot", "params": {}}, wait=0.2
    )
    assert late["state"] == "timed_out"
    request = device.get()
    assert json.loads(request.payload)["method"] == "reboot"
    request_id = request.topic.rsplit("/", 1)[1]
    device.publish(f"v1/devices/me/rpc/response/{request_id}", json.dumps({}), 1)
    assert in_state(api, late["id"], "replied")["callId"] == request_id
