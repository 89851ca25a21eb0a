"""``/api/rules`` over real HTTP: the round trip, and every refusal as problem+json naming what
was wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from alibaba_device import make_device, make_product
from hongshan.things.tsl import ThingModel
from thingsboard_device import make_tb_product

STREETLIGHT = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], (word, body)
    return body


def test_a_rule_round_trip(api: httpx.Client) -> None:
    rule = {
        "name": "echo",
        "sql": 'SELECT a FROM "town/in" WHERE a > 1',
        "actions": [{"type": "republish", "topic": "town/out/${a}"}],
    }
    created = api.post("/api/rules", json=rule)
    assert created.status_code == 201, created.text
    body = created.json()
    rule_id, secret = body["id"], body["secret"]
    assert len(secret) == 32 and body["enabled"] and body["maxPerSecond"] == 100
    assert body["actions"] == [{"type": "republish", "topic": "town/out/${a}", "qos": 0}]
    assert [r["name"] for r in api.get("/api/rules").json()["items"]] == ["echo"]
    shown = api.get(f"/api/rules/{rule_id}").json()
    assert "secret" not in shown and shown["sql"] == rule["sql"]
    assert api.get(f"/api/rules/{rule_id}", params={"secret": "true"}).json()["secret"] == secret
    changed = api.put(
        f"/api/rules/{rule_id}",
        json={**rule, "sql": 'SELECT b FROM "town/in"', "maxPerSecond": 5},
    )
    assert changed.status_code == 200, changed.text
    assert (
        changed.json()["sql"] == 'SELECT b FROM "town/in"' and changed.json()["maxPerSecond"] == 5
    )
    assert api.get(f"/api/rules/{rule_id}", params={"secret": "true"}).json()["secret"] == secret
    assert api.post(f"/api/rules/{rule_id}/disable").json()["enabled"] is False
    assert api.get(f"/api/rules/{rule_id}/trace").json()["running"] is False
    assert api.post(f"/api/rules/{rule_id}/enable").json()["enabled"] is True
    trace = api.get(f"/api/rules/{rule_id}/trace").json()
    assert trace["running"] is True and trace["counters"]["matched"] == 0
    assert api.delete(f"/api/rules/{rule_id}").status_code == 204
    problem(api.get(f"/api/rules/{rule_id}"), 404, f"no rule {rule_id}")
    problem(api.get(f"/api/rules/{rule_id}/trace"), 404)
    problem(api.delete(f"/api/rules/{rule_id}"), 404)
    problem(api.get(f"/api/rules/{2**63}"), 404)


def test_a_rule_that_is_no_rule_is_refused_where_it_goes_wrong(api: httpx.Client) -> None:
    refused = api.post("/api/rules", json={"name": "bad", "sql": 'SELECT * FROM "a" WHERE'})
    problem(refused, 400, "line 1, column 24: expected an expression")
    problem(api.post("/api/rules", json={"name": "bad", "sql": 'SELECT * FROM "a/#/b"'}), 400)
    assert api.get("/api/rules").json()["items"] == []


def test_a_rule_reading_what_the_thing_model_lacks_is_refused_naming_it(
    server: Any, api: httpx.Client
) -> None:
    model = ThingModel.from_json(STREETLIGHT.read_text())
    pk = make_product(server, thing_model=model).product_key
    alibaba = f'SELECT * FROM "/{pk}/+/thing/event/property/post" WHERE items.Brighness.value > 1'
    body = problem(api.post("/api/rules", json={"name": "typo", "sql": alibaba}), 400, "Brighness")
    assert body["title"] == "Bad Request"
    tb = make_tb_product(server).product_key
    neutral = f'SELECT values.temprature AS t FROM "$things/{tb}/+/properties"'
    problem(api.post("/api/rules", json={"name": "typo", "sql": neutral}), 400, "temprature")
    fine = f'SELECT values.temperature AS t FROM "$things/{tb}/+/properties"'
    assert api.post("/api/rules", json={"name": "fine", "sql": fine}).status_code == 201
    nowhere = 'SELECT * FROM "$things/a1NoSuchPrd/+/properties"'
    problem(api.post("/api/rules", json={"name": "x", "sql": nowhere}), 400, "a1NoSuchPrd")


def test_actions_that_cannot_be_done_are_refused(server: Any, api: httpx.Client) -> None:
    model = ThingModel.from_json(STREETLIGHT.read_text())
    pk = make_product(server, thing_model=model).product_key
    make_device(server, pk, "lamp-0001")
    sql = 'SELECT * FROM "town/in"'

    def refused(action: dict[str, Any], *words: str) -> None:
        rule = {"name": "r", "sql": sql, "actions": [action]}
        problem(api.post("/api/rules", json=rule), 400, *words)

    refused({"type": "set", "productKey": pk, "deviceName": "lamp-9999"}, "lamp-9999")
    refused(
        {"type": "invoke", "productKey": pk, "deviceName": "lamp-0001", "service": "Explode"},
        "Explode",
    )
    refused(
        {"type": "set", "productKey": pk, "deviceName": "lamp-0001", "values": {"Colour": 1}},
        "no property 'Colour'",
    )
    refused({"type": "webhook", "url": "ftp://example.com/"}, "ftp://")
    refused({"type": "webhook", "url": "http://127.0.0.1/", "retries": 99}, "retries")
    refused({"type": "republish", "topic": "town/+/x"}, "town/+/x")
    refused({"type": "teleport"})
    error_action = {"name": "r", "sql": sql, "errorAction": {"type": "webhook", "url": "x"}}
    problem(api.post("/api/rules", json=error_action), 400, "webhook")
    problem(api.post("/api/rules", json={"name": "r", "sql": sql, "maxPerSecond": 0}), 400)
    problem(api.post("/api/rules", json={"name": "", "sql": sql}), 400, "name")
    problem(api.post("/api/rules", json={"name": "nul", "sql": "SELECT '\x00' FROM \"a\""}), 400)
    invoke = {"type": "invoke", "productKey": pk, "deviceName": "lamp-0001", "service": "Reboot"}
    assert api.post("/api/rules", json={"name": "r", "sql": sql, "actions": [invoke]}).is_success
    problem(api.post("/api/rules", json={"name": "r", "sql": sql}), 409, "r")


def test_the_openapi_document_describes_the_rules(api: httpx.Client) -> None:
    document = api.get("/api/schema/openapi.json").json()
    assert {"/api/rules", "/api/rules/{rule_id}", "/api/rules/{rule_id}/trace"} <= set(
        document["paths"]
    )
    schemas = json.dumps(document["components"]["schemas"])
    assert "nonRuns" in schemas and "errorAction" in schemas
