"""The REST API's ThingsBoard groundwork over real HTTP: a product's protocol and schemaless
flag, a thingsboard product's devices' access tokens and basic MQTT credentials."""

from __future__ import annotations

import httpx
from test_rest import problem


def test_a_product_speaks_a_protocol_and_may_be_schemaless(api: httpx.Client) -> None:
    plain = api.post("/api/products", json={"name": "Streetlight"}).json()
    assert (plain["protocol"], plain["schemaless"]) == ("alink", False)
    created = api.post(
        "/api/products", json={"name": "Air_station", "protocol": "thingsboard", "schemaless": True}
    )
    assert created.status_code == 201, created.text
    pk = created.json()["productKey"]
    shown = api.get(f"/api/products/{pk}").json()
    assert (shown["protocol"], shown["schemaless"]) == ("thingsboard", True)
    assert (
        api.patch(f"/api/products/{pk}", json={"schemaless": False}).json()["schemaless"] is False
    )
    problem(api.post("/api/products", json={"name": "Gadget", "protocol": "lwm2m"}), 400)
    problem(api.patch(f"/api/products/{pk}", json={"protocol": "alink"}), 400)  # for good


def test_a_thingsboard_devices_token_and_basic_credentials(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Air_station", "protocol": "thingsboard"}).json()[
        "productKey"
    ]
    created = api.post(f"/api/products/{pk}/devices", json={"deviceName": "station-01"}).json()
    token = created["accessToken"]
    assert len(token) == 20 and len(created["deviceSecret"]) == 32
    device = f"/api/products/{pk}/devices/station-01"
    assert api.get(device).json()["accessToken"] is None  # only when asked for
    assert api.get(device + "/credentials").json() == {
        "productKey": pk,
        "deviceName": "station-01",
        "deviceSecret": created["deviceSecret"],
        "accessToken": token,
    }
    given = api.post(
        f"/api/products/{pk}/devices", json={"deviceName": "station-02", "accessToken": token}
    )
    problem(given, 409)

    basic = {"clientId": "station-01", "username": "air", "password": "s3cret"}
    changed = api.put(device + "/credentials", json={"mqttBasic": basic})
    assert changed.status_code == 200, changed.text
    assert changed.json()["mqttBasic"] == basic and "accessToken" not in changed.json()
    assert api.get(device + "/credentials").json()["mqttBasic"] == basic
    fresh = api.put(device + "/credentials", json={"newAccessToken": True}).json()
    assert fresh["accessToken"] not in (None, token) and "mqttBasic" not in fresh
    kept = api.put(device + "/credentials", json={"accessToken": token}).json()
    assert kept["accessToken"] == token
    problem(api.put(device + "/credentials", json={}), 400)
    problem(api.put(device + "/credentials", json={"accessToken": "a b"}), 400)
    problem(api.put(device + "/credentials", json={"mqttBasic": {"password": "x"}}), 400)
    problem(api.put(f"/api/products/{pk}/devices/nobody-here/credentials", json={}), 404)

    batch = api.post(f"/api/products/{pk}/devices/batch", json={"count": 3}).json()
    assert len({triple["accessToken"] for triple in batch}) == 3

    alink = api.post("/api/products", json={"name": "Streetlight"}).json()["productKey"]
    lamp = api.post(f"/api/products/{alink}/devices", json={"deviceName": "lamp-0001"}).json()
    assert lamp["accessToken"] is None
    assert (
        "accessToken"
        not in api.post(f"/api/products/{alink}/devices/batch", json={"count": 1}).json()[0]
    )
    lamp_credentials = f"/api/products/{alink}/devices/lamp-0001/credentials"
    problem(api.put(lamp_credentials, json={"newAccessToken": True}), 400)
