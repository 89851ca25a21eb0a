"""A rule handing its output to another rule's input (``{"type": "rule", "rule": NAME}``), on a
real server: an Alink lamp on paho posts, rule A forwards, rule B (and only B) runs on A's
output and calls a real webhook; a ring of two stops at the depth limit; a target disabled or
deleted fails the action; a target that does not exist, or the rule itself, is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_rule_api import problem
from test_rule_engine import create, watch

from alibaba_device import lamps, online, post
from broker_peers import Paho
from hongshan.services.rules.engine import MAX_DEPTH
from webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    made = WebhookReceiver()
    yield made
    made.close()


def trace(api: httpx.Client, rule: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/api/rules/{rule['id']}/trace").json()
    return found


def to(name: str) -> dict[str, str]:
    return {"type": "rule", "rule": name}


def test_a_post_fires_a_rule_that_hands_its_output_to_another_which_calls_a_webhook(
    server: Any, paho_client: Any, api: httpx.Client, receiver: WebhookReceiver
) -> None:
    pk, secrets = lamps(server, "lamp-0001")
    second = create(
        api,
        name="B bright",
        sql=(
            "SELECT lamp, brightness, topic() AS heard, deviceName() AS device, "
            "latest('LightSwitch') AS switch "
            'FROM "town/never" WHERE brightness > 50'
        ),
        actions=[
            {"type": "webhook", "url": receiver.url},
            {"type": "republish", "topic": "town/b"},
        ],
    )
    first = create(
        api,
        name="A on",
        sql=(
            "SELECT deviceName() AS lamp, items.Brightness.value AS brightness "
            f'FROM "/{pk}/+/thing/event/property/post" WHERE items.LightSwitch.value = 1'
        ),
        actions=[to("B bright")],
    )
    # a rule listening on the rules' inputs hears nothing of it: only the named rule runs
    everywhere = create(
        api, name="on inputs", sql='SELECT * FROM "$rules/#"', actions=[to("B bright")]
    )
    watcher = watch(server, paho_client, "$rules/#")
    assert watcher.subscribe("town/#", 1) == [1]
    lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1, "Brightness": 20})  # B's WHERE: no
    post(lamp, pk, "lamp-0001", {"LightSwitch": 0, "Brightness": 90})  # A's WHERE: no
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1, "Brightness": 80})
    headers, body = receiver.get()
    assert json.loads(body) == {
        "lamp": "lamp-0001",
        "brightness": 80,
        "heard": "$rules/B bright",
        "device": "lamp-0001",
        "switch": 1,
    }
    assert headers["X-Hongshan-Rule"] == str(second["id"])
    # nothing was published on the way: the first message any subscriber gets is B's own
    assert watcher.get().topic == "town/b"
    a, b = trace(api, first), trace(api, second)
    assert a["counters"]["matched"] == 3 and a["counters"]["fired"] == 2
    assert a["runs"][0]["errors"] == [] and a["runs"][0]["depth"] == 0
    assert b["counters"]["matched"] == 2 and b["counters"]["fired"] == 1
    assert b["counters"]["notRun"] == 1
    assert b["runs"][0]["topic"] == "$rules/B bright" and b["runs"][0]["depth"] == 1
    dim = b["nonRuns"][0]
    assert dim["topic"] == "$rules/B bright" and dim["condition"] == "brightness > 50"
    assert trace(api, everywhere)["counters"]["matched"] == 0
    assert receiver.count == 1


def test_two_rules_handing_to_each_other_stop_at_the_depth_limit(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    ping = create(api, name="ping", sql='SELECT n + 1 AS n FROM "town/ring"')
    pong = create(api, name="pong", sql='SELECT n + 1 AS n FROM "town/never"', actions=[to("ping")])
    changed = api.put(
        f"/api/rules/{ping['id']}",
        json={"name": "ping", "sql": 'SELECT n + 1 AS n FROM "town/ring"', "actions": [to("pong")]},
    )
    assert changed.status_code == 200, changed.text
    sender: Paho = paho_client(server.port).connect()
    assert sender.publish("town/ring", b'{"n": 0}', 1) == 0
    a, b = trace(api, ping), trace(api, pong)
    # depths 0..MAX_DEPTH fire, ping on the even ones; the next one is a non-run
    assert a["counters"]["fired"] == MAX_DEPTH // 2 + 1
    assert b["counters"]["fired"] == (MAX_DEPTH + 1) // 2
    assert a["runs"][0]["output"] == {"n": MAX_DEPTH + 1}
    last = b if MAX_DEPTH % 2 == 0 else a
    assert last["counters"]["looped"] == 1 and last["nonRuns"][0]["reason"] == "depth_limit"
    assert last["counters"]["matched"] == last["counters"]["fired"] + 1
    assert a["counters"]["failed"] == b["counters"]["failed"] == 0


def test_a_target_disabled_or_deleted_fails_the_action_and_reaches_the_error_action(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    target = create(api, name="target", sql='SELECT * FROM "town/never"')
    forwarding = create(
        api,
        name="forwarding",
        sql='SELECT a FROM "town/in"',
        actions=[to("target"), {"type": "republish", "topic": "town/out"}],
        errorAction={"type": "republish", "topic": "town/errors"},
    )
    watcher = watch(server, paho_client, "town/#")
    sender: Paho = paho_client(server.port).connect()
    assert api.post(f"/api/rules/{target['id']}/disable").status_code == 200
    sender.publish("town/in", b'{"a": 1}', 1)
    got = {message.topic: json.loads(message.payload) for message in watcher.take(2)}
    assert got["town/out"] == {"a": 1}  # (the other action still done)
    report = got["town/errors"]
    assert report["action"] == "rule" and report["ruleId"] == forwarding["id"]
    assert report["error"] == "rule 'target' is not running (disabled, deleted or renamed)"
    assert report["output"] == {"a": 1} and report["payload"] == {"a": 1}
    assert api.delete(f"/api/rules/{target['id']}").status_code == 204
    sender.publish("town/in", b'{"a": 2}', 1)
    got = {message.topic: json.loads(message.payload) for message in watcher.take(2)}
    assert got["town/errors"]["error"].startswith("rule 'target' is not running")
    found = trace(api, forwarding)
    assert found["counters"]["fired"] == 2 and found["counters"]["failed"] == 2
    assert found["failures"][0]["action"] == "rule"
    assert found["runs"][0]["errors"] == [f"rule: {report['error']}"]


def test_a_shadow_rule_says_it_would_hand_on_and_a_shadow_target_only_would_fire(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    target = create(api, name="target", sql='SELECT a FROM "town/never"', shadow=True)
    live = create(api, name="live", sql='SELECT a FROM "town/in"', actions=[to("target")])
    quiet = create(
        api, name="quiet", sql='SELECT a FROM "town/in"', actions=[to("target")], shadow=True
    )
    sender: Paho = paho_client(server.port).connect()
    sender.publish("town/in", b'{"a": 5}', 1)
    would = trace(api, quiet)["runs"][0]
    assert would["shadow"] and would["wouldDo"] == [
        {"type": "rule", "rule": "target", "topic": "$rules/target", "payload": {"a": 5}}
    ]
    assert trace(api, live)["counters"]["fired"] == 1
    fed = trace(api, target)  # (from the live rule only: a shadow rule hands nothing on)
    assert fed["counters"]["matched"] == 1 and fed["counters"]["wouldFire"] == 1
    assert fed["runs"][0]["topic"] == "$rules/target"


def test_a_target_that_does_not_exist_or_the_rule_itself_is_refused(
    api: httpx.Client, server: Any
) -> None:
    refused = api.post(
        "/api/rules", json={"name": "a", "sql": 'SELECT * FROM "t"', "actions": [to("nobody")]}
    )
    problem(refused, 400, "rule: no rule named 'nobody'")
    itself = {"name": "a", "sql": 'SELECT * FROM "t"', "errorAction": to("a")}
    problem(api.post("/api/rules", json=itself), 400, "'a' is this rule")
    problem(api.post("/api/rules", json={**itself, "errorAction": to("")}), 400, "no rule's name")
    made = create(api, name="a", sql='SELECT * FROM "t"')
    # a rule renamed: its old name is no other rule's
    renamed = {"name": "a2", "sql": 'SELECT * FROM "t"', "actions": [to("a")]}
    problem(api.put(f"/api/rules/{made['id']}", json=renamed), 400, "no rule named 'a'")
    problem(api.put(f"/api/rules/{made['id']}", json={**renamed, "name": "a"}), 400, "this rule")
    check = {"name": "c", "sql": 'SELECT * FROM "t"', "actions": [to("d")]}
    problem(api.post("/api/rules/check", json=check), 400, "no rule named 'd'")
    # an import's rules may name each other (``alongside``: those it will create)
    done = api.post("/api/rules/check", json=check, params={"alongside": ["d", "e"]})
    assert done.status_code == 200, done.text
    assert [rule["name"] for rule in api.get("/api/rules").json()["items"]] == ["a"]


def test_a_scene_hands_nothing_to_a_rule(api: httpx.Client) -> None:
    scene = {
        "name": "s",
        "triggers": [{"type": "webhook"}],
        "actions": [to("a")],
    }
    problem(api.post("/api/scenes", json=scene), 400, "action 1 (rule)")


def test_the_openapi_document_describes_the_rule_action(api: httpx.Client) -> None:
    document = api.get("/api/schema/openapi.json").json()
    forward = document["components"]["schemas"]["ForwardAction"]
    assert forward["properties"]["type"]["const"] == "rule" and "rule" in forward["required"]
    check = document["paths"]["/api/rules/check"]["post"]
    assert "alongside" in [parameter["name"] for parameter in check["parameters"]]
