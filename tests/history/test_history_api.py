"""The history over the REST API of a running server: raw pages, buckets, CSV, the log,
aggregates per district, latest values of many devices, and problem+json for bad questions."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from hongshan.store.history.model import LogKind

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    return detail


async def _committed(history: Any) -> None:
    await history.committed()


def town(server: Any, api: httpx.Client) -> str:
    """Three stations in two districts; PM25 every minute for two hours, each station its
    own level (10, 20, 30); an event and status changes for the first."""
    pk = api.post("/api/products", json={"name": "Air-station"}).json()["productKey"]
    places = {"air-1": "Xinhua", "air-2": "Xinhua", "air-3": "Hongshan"}
    for n, (dn, district) in enumerate(places.items()):
        location = {"lat": 31.5 + n / 100, "lon": 120.3, "district": district}
        made = api.post(
            f"/api/products/{pk}/devices", json={"deviceName": dn, "location": location}
        )
        assert made.status_code == 201, made.text
    history = server.platform.history

    def seed() -> None:
        for n, dn in enumerate(places):
            level = 10 * (n + 1)
            history.add_points((pk, dn), [("PM25", T0 + m * MINUTE, level) for m in range(120)])
        history.add_log((pk, "air-1"), LogKind.STATUS, "online", T0, {"address": "10.0.0.1"})
        history.add_log((pk, "air-1"), LogKind.EVENT, "Smoke", T0 + 5, {"level": 'high, "very"'})
        history.add_log((pk, "air-1"), LogKind.STATUS, "offline", T0 + 9, {"reason": "x"})

    server.call(seed)
    server.run(_committed(history))
    return pk


def test_raw_values_in_pages_and_as_csv(server: Any, api: httpx.Client) -> None:
    pk = town(server, api)
    url = f"/api/products/{pk}/devices/air-1/history/PM25"
    window = {"from": str(T0), "to": str(T0 + 10 * MINUTE)}
    first = api.get(url, params={**window, "limit": 4}).json()
    assert first["points"] == [[T0 + m * MINUTE, 10] for m in range(4)]
    rest = api.get(url, params={**window, "limit": 100, "cursor": first["next"]}).json()
    assert len(rest["points"]) == 6 and rest["next"] is None
    newest = api.get(url, params={**window, "limit": 1, "order": "desc"}).json()
    assert newest["points"] == [[T0 + 9 * MINUTE, 10]]
    iso = api.get(url, params={"from": "2025-12-01T08:00:00", "to": "2025-12-01T08:02:00",
                               "tz": "Asia/Shanghai"}).json()  # fmt: skip
    assert [p[0] for p in iso["points"]] == [T0, T0 + MINUTE]
    text = api.get(url, params={**window, "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text.text)))
    assert rows[0] == ["ts", "time", "value"] and len(rows) == 11
    assert rows[1] == [str(T0), "2025-12-01T00:00:00.000+00:00", "10"]


def test_buckets_of_one_device(server: Any, api: httpx.Client) -> None:
    pk = town(server, api)
    url = f"/api/products/{pk}/devices/air-2/history/PM25"
    found = api.get(
        url,
        params={"from": str(T0), "to": str(T0 + 2 * HOUR), "every": "1h", "agg": "avg,count"},
    ).json()
    assert found["series"][0]["buckets"] == [
        {"start": T0, "values": {"avg": 20.0, "count": 60}},
        {"start": T0 + HOUR, "values": {"avg": 20.0, "count": 60}},
    ]


def test_aggregates_per_district_and_for_the_whole_town(server: Any, api: httpx.Client) -> None:
    pk = town(server, api)
    window = {"from": str(T0), "to": str(T0 + 2 * HOUR), "every": "1d", "tz": "UTC"}
    per_district = api.get(
        "/api/history/aggregate",
        params={**window, "identifier": "PM25", "productKey": pk, "groupBy": "district",
                "agg": ["avg", "max"]},
    ).json()  # fmt: skip
    summary = {s["key"]: (s["devices"], s["buckets"][0]["values"]) for s in per_district["series"]}
    assert summary == {
        "Hongshan": (1, {"avg": 30.0, "max": 30}),
        "Xinhua": (2, {"avg": 15.0, "max": 20}),
    }
    chosen = api.get(
        "/api/history/aggregate",
        params={**window, "identifier": "PM25", "devices": [f"{pk}/air-1", f"{pk}/air-3"]},
    ).json()
    assert chosen["series"][0]["buckets"][0]["values"] == {"avg": 20.0}
    text = api.get(
        "/api/history/aggregate",
        params={**window, "identifier": "PM25", "productKey": pk, "groupBy": "district",
                "format": "csv"},
    ).text  # fmt: skip
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["identifier", "key", "start", "time", "avg"],
        ["PM25", "Hongshan", str(T0), "2025-12-01T00:00:00.000+00:00", "30.0"],
        ["PM25", "Xinhua", str(T0), "2025-12-01T00:00:00.000+00:00", "15.0"],
    ]


def test_the_log_by_kind_and_as_csv(server: Any, api: httpx.Client) -> None:
    pk = town(server, api)
    url = f"/api/products/{pk}/devices/air-1/log"
    window = {"from": str(T0), "to": str(T0 + HOUR)}
    everything = api.get(url, params=window).json()
    assert [(e["kind"], e["identifier"]) for e in everything["entries"]] == [
        ("status", "online"),
        ("event", "Smoke"),
        ("status", "offline"),
    ]
    status = api.get(url, params={**window, "kind": "status"}).json()
    assert [e["identifier"] for e in status["entries"]] == ["online", "offline"]
    rows = list(csv.reader(io.StringIO(api.get(url, params={**window, "format": "csv"}).text)))
    assert rows[2][2:] == ["event", "Smoke", '{"level":"high, \\"very\\""}']


def test_latest_values_of_many_devices(server: Any, api: httpx.Client, paho_client: Any) -> None:
    pk = town(server, api)
    server.call(
        lambda: server.platform.twin.restore({(pk, "air-3"): {"PM25": (31, T0), "PM10": (50, T0)}})
    )
    found = api.get("/api/history/latest", params={"productKey": pk, "identifier": "PM25"}).json()
    by_name = {d["deviceName"]: d for d in found}
    assert by_name["air-3"]["values"] == {"PM25": [31, T0]}
    assert by_name["air-3"]["district"] == "Hongshan" and by_name["air-1"]["values"] == {}
    assert list(by_name["air-3"]) == [
        "productKey",
        "deviceName",
        "district",
        "lat",
        "lon",
        "values",
    ]
    # several identifiers, or none (all): in the twin's order, whatever the order asked
    server.call(
        lambda: server.platform.twin.restore(
            {(pk, "air-2"): {"PM25": (21, T0 + 2), "Noise": (40, T0), "PM10": (60, T0 + 1)}}
        )
    )
    for asked, expected in (
        (["PM10", "PM25"], {"PM25": [21, T0 + 2], "PM10": [60, T0 + 1]}),
        ([], {"PM25": [21, T0 + 2], "Noise": [40, T0], "PM10": [60, T0 + 1]}),
        (["Nothing"], {}),
    ):
        params: dict[str, Any] = {"productKey": pk, "identifier": asked}
        found = api.get("/api/history/latest", params=params).json()
        air2 = next(d for d in found if d["deviceName"] == "air-2")
        assert list(air2["values"].items()) == list(expected.items()), asked
        assert next(d for d in found if d["deviceName"] == "air-1")["values"] == {}


def test_bad_questions_get_problem_json(server: Any, api: httpx.Client) -> None:
    pk = town(server, api)
    url = f"/api/products/{pk}/devices/air-1/history/PM25"
    assert "every=" in problem(api.get(url, params={"every": "fortnightly"}), 400)
    assert "agg=median" in problem(api.get(url, params={"every": "1h", "agg": "median"}), 400)
    assert "not a time" in problem(api.get(url, params={"from": "last tuesday"}), 400)
    assert "'to' must be after" in problem(api.get(url, params={"from": "10", "to": "5"}), 400)
    assert "not a time zone" in problem(api.get(url, params={"every": "1d", "tz": "Mars"}), 400)
    assert "cursor" in problem(api.get(url, params={"cursor": "abc"}), 400)
    problem(api.get(f"/api/products/{pk}/devices/nobody/history/PM25"), 404)
    assert "productKey/deviceName" in problem(
        api.get("/api/history/aggregate", params={"identifier": "PM25", "devices": "air-1"}), 400
    )


def test_a_products_retention_is_shown_set_and_reset(server: Any, api: httpx.Client) -> None:
    pk = town(server, api)
    url = f"/api/products/{pk}/retention"
    assert api.get(url).json() == {"rawDays": None, "rollupDays": None, "own": False}
    changed = api.put(url, json={"rawDays": 30, "rollupDays": 365})
    assert changed.json() == {"rawDays": 30.0, "rollupDays": 365.0, "own": True}
    assert api.get(url).json()["own"] is True
    assert "positive" in problem(api.put(url, json={"rawDays": 0}), 400)
    problem(api.put(url, json={"rawDays": "a month"}), 400)
    problem(api.get("/api/products/a1Nothing/retention"), 404)
    assert api.delete(url).json() == {"rawDays": None, "rollupDays": None, "own": False}
