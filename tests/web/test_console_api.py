"""What the console reads besides the REST API, over real HTTP: its files at ``/`` with their
headers (and the API's routes unshadowed), ``/api/console/config`` and ``/api/map/devices``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from hongshan.api.console_files import WEB, content_security_policy


def test_the_console_is_served_at_the_root_with_a_strict_policy(server: Any) -> None:
    base = f"http://127.0.0.1:{server.ports['http']}"
    with httpx.Client(base_url=base) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script src="app.js" type="module">' in page.text
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe" not in policy
        assert page.headers["cache-control"] == "no-cache"
        assert anonymous.get("/vendor/leaflet/leaflet.js").status_code == 200
        assert anonymous.get("/views/map.js").headers["content-type"].startswith("text/javascript")
        # the API's routes are not shadowed: its own answers, problem+json
        assert anonymous.get("/api/health").json()["status"] in {"ok", "starting"}
        denied = anonymous.get("/api/devices")
        assert denied.status_code == 401
        assert denied.headers["content-type"].startswith("application/problem+json")
        assert anonymous.get("/no-such-file.js").status_code == 404


def test_a_tile_servers_origin_is_allowed_for_what_its_tiles_need() -> None:
    policy = content_security_policy("https://tiles.example.org:8443/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tiles.example.org:8443;" in policy
    assert "connect-src 'self';" in policy
    assert "tiles.example.org" not in content_security_policy("")
    archive = content_security_policy("https://maps.example.org/hongshan.pmtiles")
    assert "img-src 'self' data: blob: https://maps.example.org;" in archive
    assert "connect-src 'self' https://maps.example.org;" in archive  # (range requests)
    local = content_security_policy("/tiles/hongshan.pmtiles")
    assert "img-src 'self' data: blob:;" in local and "connect-src 'self';" in local


def test_every_vendored_library_ships_with_its_licence() -> None:
    vendor = WEB / "vendor"
    libraries = [d for d in vendor.iterdir() if d.is_dir()]
    assert {d.name for d in libraries} >= {"leaflet", "leaflet.markercluster", "pmtiles", "uplot"}
    for library in libraries:
        assert (library / "LICENSE").is_file(), library.name
    readme = (vendor / "README.md").read_text()
    for library in libraries:
        assert f"`{library.name}/LICENSE`" in readme, library.name


def test_the_district_is_the_script_s_output() -> None:
    """The shipped GeoJSON is what tools/make_district.py draws (run it again after a change)."""
    district = json.loads((WEB / "district.geojson").read_text())
    kinds = [f["properties"]["kind"] for f in district["features"]]
    assert kinds.count("clinic") == 2 and "park" in kinds and "street" in kinds
    streets = [f for f in district["features"] if f["properties"]["kind"] == "street"]
    assert all(f["properties"]["name"] for f in streets)
    for feature in district["features"]:
        lon, lat = _first_point(feature["geometry"])
        assert 31.47 < lat < 31.51 and 120.41 < lon < 120.45


def _first_point(geometry: dict[str, Any]) -> list[float]:
    coordinates = geometry["coordinates"]
    while isinstance(coordinates[0], list):
        coordinates = coordinates[0]
    return list(coordinates)


def test_the_console_config_says_who_and_how_to_draw_the_map(api: httpx.Client) -> None:
    config = api.get("/api/console/config").json()
    assert config["user"]["role"] == "admin"
    assert config["map"] == {
        "tileUrl": "",
        "tileAttribution": "",
        "district": "district.geojson",
        "center": [31.49, 120.43],
        "zoom": 16,
    }


def test_the_map_opens_at_the_town_and_draws_its_tiles(make_server: Any) -> None:
    server = make_server(
        latitude=31.5,
        longitude=120.4,
        map_tile_url="https://tiles.example.org/{z}/{x}/{y}.png",
        map_zoom=14,
    )
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    headers = {"Authorization": f"Bearer {token}"}
    shown = httpx.get(f"{base}/api/console/config", headers=headers).json()["map"]
    assert shown["center"] == [31.5, 120.4] and shown["zoom"] == 14
    assert shown["tileUrl"] == "https://tiles.example.org/{z}/{x}/{y}.png"
    page = httpx.get(f"{base}/")
    assert "https://tiles.example.org" in page.headers["content-security-policy"]


def test_map_devices_are_located_rows_with_state_and_worst_alarm(api: httpx.Client) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    other = api.post("/api/products", json={"name": "Meter"}).json()["productKey"]
    at = {"lat": 31.49, "lon": 120.43}
    for name in ("lamp-a", "lamp-b"):
        made = api.post(f"/api/products/{pk}/devices", json={"deviceName": name, "location": at})
        assert made.status_code == 201, made.text
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-nowhere"})
    api.post(f"/api/products/{other}/devices", json={"deviceName": "meter-m", "location": at})
    api.post(f"/api/products/{pk}/devices/lamp-b/disable")
    for severity in ("minor", "critical"):
        raised = api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "lamp-a", "type": severity, "severity": severity},
        )
        assert raised.status_code == 201, raised.text

    found = api.get("/api/map/devices").json()
    assert found["fields"][:5] == ["productKey", "deviceName", "lat", "lon", "state"]
    rows = {(row[0], row[1]): row for row in found["devices"]}
    assert set(rows) == {
        (pk, "lamp-a"),
        (pk, "lamp-b"),
        (other, "meter-m"),
    }  # (not the one without a place)
    assert rows[(pk, "lamp-a")] == [pk, "lamp-a", 31.49, 120.43, "inactive", "critical", 2]
    assert rows[(pk, "lamp-b")][4:] == ["disabled", None, 0]

    narrowed = api.get("/api/map/devices", params={"productKey": other}).json()["devices"]
    assert [row[1] for row in narrowed] == ["meter-m"]
    disabled = api.get("/api/map/devices", params={"state": "disabled"}).json()["devices"]
    assert [row[1] for row in disabled] == ["lamp-b"]
    api.post("/api/groups", json={"name": "east"})
    api.post(
        "/api/groups/east/devices",
        json={"devices": [{"productKey": pk, "deviceName": "lamp-a"}]},
    )
    grouped = api.get("/api/map/devices", params={"group": "east"}).json()["devices"]
    assert [row[1] for row in grouped] == ["lamp-a"]
    bad = api.get("/api/map/devices", params={"state": "asleep"})
    assert bad.status_code == 400


def test_a_principal_limited_to_groups_sees_only_their_devices(
    server: Any, api: httpx.Client
) -> None:
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    for name in ("lamp-east", "lamp-west"):
        api.post(
            f"/api/products/{pk}/devices",
            json={"deviceName": name, "location": {"lat": 31.49, "lon": 120.43}},
        )
    for group in ("eastside", "westside"):
        assert api.post("/api/groups", json={"name": group}).status_code == 201
    api.post(
        "/api/groups/eastside/devices",
        json={"devices": [{"productKey": pk, "deviceName": "lamp-east"}]},
    )
    base = f"http://127.0.0.1:{server.ports['http']}"

    def seen_by(name: str, groups: list[str] | None) -> list[str]:
        user = {"name": name, "password": "a long password 1", "role": "viewer"}
        made = api.post("/api/users", json={**user, "groups": groups})
        assert made.status_code == 201, made.text
        login = {"username": name, "password": user["password"]}
        token = httpx.post(base + "/api/auth/login", json=login).json()["accessToken"]
        found = httpx.get(base + "/api/map/devices", headers={"Authorization": f"Bearer {token}"})
        assert found.status_code == 200, found.text
        return sorted(row[1] for row in found.json()["devices"])

    assert seen_by("ward-all", None) == ["lamp-east", "lamp-west"]
    assert seen_by("ward-east", ["eastside"]) == ["lamp-east"]
    assert seen_by("ward-west", ["westside"]) == []  # (a group without located devices)
    assert seen_by("ward-none", []) == []
