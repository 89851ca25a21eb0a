"""The REST API over real HTTP against a running server: the admin token, products with their
thing models, devices, groups, property set and service calls, and problem+json for every
error."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path
from typing import Any

import httpx

from hongshan.api.dependencies import NOT_PROVIDED, Services

DATA = Path(__file__).parent.parent / "things" / "data"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_the_token_is_written_once_with_mode_0600_and_required(server: Any) -> None:
    path = Path(server.settings.data_dir) / "admin.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    base = f"http://127.0.0.1:{server.ports['http']}"
    assert httpx.get(base + "/api/health").status_code == 200  # open
    refused = httpx.get(base + "/api/products")
    assert "Bearer" in refused.headers["www-authenticate"]
    problem(refused, 401)
    problem(httpx.get(base + "/api/products", headers={"Authorization": "Bearer nope"}), 401)


def test_a_product_with_its_thing_model_round_trips(api: httpx.Client) -> None:
    tsl = json.loads((DATA / "streetlight.json").read_text())
    created = api.post("/api/products", json={"name": "Streetlight", "thingModel": tsl})
    assert created.status_code == 201, created.text
    product = created.json()
    pk = product["productKey"]
    assert product["nodeType"] == "device" and len(product["productSecret"]) == 16
    assert api.get(f"/api/products/{pk}/thing-model").json() == tsl
    assert api.get(f"/api/products/{pk}").json()["productSecret"] is None
    shown = api.get(f"/api/products/{pk}", params={"secret": "true"}).json()
    assert shown["productSecret"] == product["productSecret"]
    assert [p["productKey"] for p in api.get("/api/products").json()["items"]] == [pk]
    changed = api.patch(f"/api/products/{pk}", json={"description": "Xinhua Road lamps"})
    assert changed.json()["description"] == "Xinhua Road lamps"
    oximeter = json.loads((DATA / "oximeter.json").read_text())
    assert api.put(f"/api/products/{pk}/thing-model", json=oximeter).status_code == 200
    assert api.get(f"/api/products/{pk}/thing-model").json() == oximeter


def test_bad_requests_are_problems(api: httpx.Client) -> None:
    problem(api.get("/api/products/a1NoSuchPrd"), 404)
    problem(api.post("/api/products", json={"name": "X", "colour": "red"}), 400)
    problem(api.post("/api/products", json={"name": "X", "thingModel": {"properties": 3}}), 400)
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    problem(api.get(f"/api/products/{pk}/thing-model"), 404)
    problem(api.post(f"/api/products/{pk}/devices", json={"deviceName": "no spaces"}), 400)
    assert api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"}).is_success
    problem(api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"}), 409)
    problem(api.delete(f"/api/products/{pk}"), 409)
    problem(api.get("/api/devices", params={"tag": "no-colon"}), 400)
    problem(api.get("/api/devices", params={"limit": 0}), 400)
    problem(api.get("/api/nothing-here"), 404)


def test_devices_are_created_listed_filtered_disabled_and_deleted(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    created = api.post(
        f"/api/products/{pk}/devices",
        json={
            "deviceName": "lamp-east-1",
            "tags": {"district": "east"},
            "location": {"lat": 31.49, "lon": 120.31, "district": "east"},
        },
    ).json()
    secret = created["deviceSecret"]
    assert len(secret) == 32 and created["state"] == "inactive"
    generated = api.post(f"/api/products/{pk}/devices", json={}).json()
    assert len(generated["deviceName"]) == 20
    page = api.get("/api/devices", params={"productKey": pk}).json()
    assert page["total"] == 2 and len(page["items"]) == 2
    east = api.get("/api/devices", params={"tag": "district:east"}).json()
    assert [d["deviceName"] for d in east["items"]] == ["lamp-east-1"]
    assert east["items"][0]["deviceSecret"] is None
    device = f"/api/products/{pk}/devices/lamp-east-1"
    assert api.get(device).json()["location"] == {"lat": 31.49, "lon": 120.31, "district": "east"}
    assert api.get(device + "/credentials").json() == {
        "productKey": pk,
        "deviceName": "lamp-east-1",
        "deviceSecret": secret,
    }
    assert api.post(device + "/disable").json()["state"] == "disabled"
    assert api.get("/api/devices", params={"state": "disabled"}).json()["total"] == 1
    assert api.post(device + "/enable").json()["state"] == "inactive"
    changed = api.patch(device, json={"tags": {"street": "Xinhua"}, "removeTags": ["district"]})
    assert changed.json()["tags"] == {"street": "Xinhua"}
    assert api.delete(device).status_code == 204
    problem(api.get(device), 404)


def test_groups(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    for name in ("lamp-0001", "lamp-0002"):
        api.post(f"/api/products/{pk}/devices", json={"deviceName": name})
    assert api.post("/api/groups", json={"name": "Xinhua_Road"}).status_code == 201
    members = {"devices": [{"productKey": pk, "deviceName": "lamp-0001"}]}
    assert api.post("/api/groups/Xinhua_Road/devices", json=members).json()["size"] == 1
    listed = api.get("/api/devices", params={"group": "Xinhua_Road"}).json()
    assert [d["deviceName"] for d in listed["items"]] == ["lamp-0001"]
    assert api.post("/api/groups/Xinhua_Road/devices/remove", json=members).json()["size"] == 0
    problem(api.post("/api/groups", json={"name": "Xinhua_Road"}), 409)
    assert api.delete("/api/groups/Xinhua_Road").status_code == 204
    problem(api.get("/api/groups/Xinhua_Road"), 404)


def test_calls_to_an_offline_device_and_calls_that_break_the_model(api: httpx.Client) -> None:
    tsl = json.loads((DATA / "streetlight.json").read_text())
    pk = api.post("/api/products", json={"name": "Lamp", "thingModel": tsl}).json()["productKey"]
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"})
    device = f"/api/products/{pk}/devices/lamp-0001"
    offline = api.post(device + "/properties", json={"params": {"Brightness": 40}})
    assert offline.status_code == 200 and offline.json()["code"] == 9200
    bad = problem(api.post(device + "/properties", json={"params": {"Brightness": 400}}), 400)
    assert bad["problems"][0]["identifier"] == "Brightness"
    read_only = problem(api.post(device + "/properties", json={"params": {"Voltage": 1.0}}), 400)
    assert "read-only" in read_only["detail"]
    problem(api.post(device + "/services/SelfDestruct", json={}), 400)
    assert api.get(device + "/properties").json() == {}


def test_an_rrpc_over_another_devices_topic_is_refused(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Meter"}).json()["productKey"]
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "meter-0001"})
    rrpc = f"/api/products/{pk}/devices/meter-0001/rrpc"
    call = {"payload": "ping", "timeout": 1, "topic": f"/{pk}/meter-0002/user/get"}
    refused = problem(api.post(rrpc, json=call), 400)  # (the dialect's check: nothing sent)
    assert "device's own" in refused["detail"] and refused["problems"][0]["identifier"] == "topic"
    offline = api.post(rrpc, json={**call, "topic": f"/{pk}/meter-0001/user/get"})
    assert offline.status_code == 200 and offline.json()["code"] == 9200


def test_the_openapi_document_describes_the_api(server: Any) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}"
    document = httpx.get(base + "/api/schema/openapi.json").json()
    assert "/api/products/{pk}/devices/{dn}" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_no_service_a_handler_is_given_is_named_like_what_a_client_sends(
    api: httpx.Client,
) -> None:
    """Handlers are given services by parameter name (``api.dependencies``): none is a
    parameter of the document, and none is named like a parameter or a body field, as Litestar
    takes a validation error keyed by a dependency's name for the server's (a 500: a shadow
    change whose ``desired`` was malformed was one while a service was called ``desired``)."""
    document = api.get("/api/schema/openapi.json").json()
    sent = {
        parameter["name"]
        for methods in document["paths"].values()
        for operation in methods.values()
        for parameter in operation.get("parameters", [])
    }
    sent |= {
        field
        for schema in document["components"]["schemas"].values()
        for field in schema.get("properties", {})
    }
    given = {field.name for field in dataclasses.fields(Services)} - NOT_PROVIDED
    assert not given & sent
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"})
    shadow = f"/api/products/{pk}/devices/lamp-0001/shadow"
    assert problem(api.put(shadow, json={"desired": []}), 400)["errors"][0]["key"] == "desired"


def test_the_shadow_from_the_api(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"})
    shadow = f"/api/products/{pk}/devices/lamp-0001/shadow"
    assert api.get(shadow).json() == {"state": {}, "metadata": {}, "version": 0, "delta": {}}
    changed = api.put(shadow, json={"desired": {"Brightness": 40}}).json()
    assert changed["state"] == {"desired": {"Brightness": 40}} and changed["version"] == 1
    assert changed["delta"] == {"Brightness": 40}
    stale = problem(api.put(shadow, json={"desired": {"Brightness": 50}, "version": 1}), 409)
    assert stale["detail"] == "shadow: shadow version conflict (409)"
    cleared = api.put(shadow, json={"desired": "null"}).json()
    assert cleared["state"] == {} and cleared["version"] == 2
    problem(api.get(f"/api/products/{pk}/devices/lamp-9999/shadow"), 404)


def test_desired_values_from_the_api(api: httpx.Client) -> None:
    tsl = json.loads((DATA / "streetlight.json").read_text())
    pk = api.post("/api/products", json={"name": "Lamp", "thingModel": tsl}).json()["productKey"]
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"})
    desired = f"/api/products/{pk}/devices/lamp-0001/desired"
    assert api.get(desired).json() == {}
    first = api.put(desired, json={"params": {"Brightness": 40}}).json()
    assert first["Brightness"]["value"] == 40 and first["Brightness"]["version"] == 1
    again = api.put(desired, json={"params": {"Brightness": 50}, "versions": {"Brightness": 1}})
    assert again.json()["Brightness"]["version"] == 2
    stale = api.put(desired, json={"params": {"Brightness": 60}, "versions": {"Brightness": 1}})
    assert problem(stale, 409)["detail"] == (
        "desired Brightness: version 1 is not the current one (2)"
    )
    problem(api.put(desired, json={"params": {"Brightness": 400}}), 400)
    problem(api.put(desired, json={"params": {"Voltage": 1.0}}), 400)  # read-only


def test_devices_in_a_batch(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Meter"}).json()["productKey"]
    batch = f"/api/products/{pk}/devices/batch"
    made = api.post(batch, json={"deviceNames": ["meter-0001", "meter-0002"]})
    assert made.status_code == 201
    assert [t["deviceName"] for t in made.json()] == ["meter-0001", "meter-0002"]
    generated = api.post(batch, json={"count": 3}).json()
    assert len(generated) == 3 and all(len(t["deviceSecret"]) == 32 for t in generated)
    assert api.get("/api/devices", params={"productKey": pk}).json()["total"] == 5
    problem(api.post(batch, json={"deviceNames": ["meter-0001", "meter-0003"]}), 409)
    assert api.get("/api/devices", params={"productKey": pk}).json()["total"] == 5  # none made
    problem(api.post(batch, json={"count": 0}), 400)
    problem(api.post(batch, json={"deviceNames": ["a-b-c-d", "a-b-c-d"]}), 400)
