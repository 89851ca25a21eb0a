"""Every list of the API pages, sorts and searches the same way (``api.paging``): ``limit``,
``offset``, ``sort`` (``-field`` descends), ``q``; a ``Page`` with ``items``, ``total``,
``limit`` and ``offset``; a sort field a list does not have is a 400 naming the ones it has."""

from __future__ import annotations

from typing import Any

import httpx

LISTS = (
    "/api/products",
    "/api/groups",
    "/api/devices",
    "/api/alarms",
    "/api/commands",
    "/api/rules",
    "/api/scenes",
    "/api/alarm-notifications",
    "/api/users",
    "/api/keys",
    "/api/audit",
)


def names(page: dict[str, Any], field: str) -> list[str]:
    return [item[field] for item in page["items"]]


def test_every_list_answers_a_page_and_refuses_what_it_cannot_sort_by(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    for path in (*LISTS, f"/api/products/{pk}/alarm-conditions"):
        page = api.get(path, params={"limit": 5, "offset": 0}).json()
        assert set(page) == {"items", "total", "limit", "offset"}, path
        assert (page["limit"], page["offset"]) == (5, 0)
        refused = api.get(path, params={"sort": "colour"})
        assert refused.status_code == 400, path
        assert "sort: 'colour' is not one of" in refused.json()["detail"]
        assert api.get(path, params={"limit": 1001}).status_code == 400


def test_products_and_groups_sort_search_and_page_in_memory(api: httpx.Client) -> None:
    for name in ("Streetlight", "Air-station", "Parking-bay", "Water-meter"):
        assert api.post("/api/products", json={"name": name}).is_success
    by_name = api.get("/api/products").json()
    assert names(by_name, "name") == ["Air-station", "Parking-bay", "Streetlight", "Water-meter"]
    backwards = api.get("/api/products", params={"sort": "-name", "limit": 2, "offset": 1}).json()
    assert names(backwards, "name") == ["Streetlight", "Parking-bay"]
    assert backwards["total"] == 4
    found = api.get("/api/products", params={"q": "METER"}).json()
    assert names(found, "name") == ["Water-meter"] and found["total"] == 1
    for group in ("east_side", "clinic_north"):
        assert api.post("/api/groups", json={"name": group}).is_success
    assert names(api.get("/api/groups", params={"sort": "-name"}).json(), "name") == [
        "east_side",
        "clinic_north",
    ]
    assert names(api.get("/api/groups", params={"q": "clinic"}).json(), "name") == ["clinic_north"]


def test_devices_sort_and_search_in_the_database(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    for name, nickname in (("lamp-b", "Xinhua_Rd_2"), ("lamp-a", "Park_gate"), ("lamp_c", "")):
        body = {"deviceName": name, "nickname": nickname}
        created = api.post(f"/api/products/{pk}/devices", json=body)
        assert created.is_success, created.text
    assert names(api.get("/api/devices").json(), "deviceName") == ["lamp-b", "lamp-a", "lamp_c"]
    by_name = api.get("/api/devices", params={"sort": "deviceName"}).json()
    assert names(by_name, "deviceName") == ["lamp-a", "lamp-b", "lamp_c"]
    assert names(api.get("/api/devices", params={"sort": "-deviceName"}).json(), "deviceName") == [
        "lamp_c",
        "lamp-b",
        "lamp-a",
    ]
    # q: in the name or the nickname, case-insensitive, and "_" is a character, not a wildcard
    assert names(api.get("/api/devices", params={"q": "XINHUA"}).json(), "deviceName") == ["lamp-b"]
    underscored = api.get("/api/devices", params={"q": "p_"}).json()
    assert names(underscored, "deviceName") == ["lamp_c"] and underscored["total"] == 1
    second = api.get("/api/devices", params={"sort": "deviceName", "limit": 1, "offset": 1}).json()
    assert names(second, "deviceName") == ["lamp-b"] and second["total"] == 3


def test_alarms_sort_by_severity_and_commands_count_their_total(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-1"})
    for kind, severity in (("tilt", "minor"), ("fire", "critical"), ("smoke", "major")):
        raised = api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "lamp-1", "type": kind, "severity": severity},
        )
        assert raised.status_code == 201, raised.text
    worst = api.get("/api/alarms", params={"sort": "-severity"}).json()
    assert names(worst, "severity") == ["critical", "major", "minor"]
    assert names(api.get("/api/alarms", params={"q": "SMO"}).json(), "type") == ["smoke"]
    target = {"productKey": pk, "deviceName": "lamp-1"}
    for _ in range(3):  # (the device is offline: each waits queued for it)
        queued = api.post("/api/commands", json={"target": target, "set": {"x": 1}, "ttl": 600})
        assert queued.status_code == 201, queued.text
    commands = api.get("/api/commands", params={"limit": 2}).json()
    assert len(commands["items"]) == 2 and commands["total"] == 3
    oldest = api.get("/api/commands", params={"sort": "createdAt", "limit": 1}).json()
    newest = api.get("/api/commands", params={"limit": 1}).json()
    assert oldest["items"][0]["id"] < newest["items"][0]["id"]
