"""Issue 12, the REST API: bad input gets a 4xx (a 503 when the store cannot serve) as
problem+json naming what was wrong; a fault of ours is a logged 500, never a bare one; what
was accepted is kept."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar, get
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance

from alibaba_device import online_lamp
from hongshan.api.problems import EXCEPTION_HANDLERS
from hongshan.store.history.retention import DAY_MS, Retention

EXAMPLES = 40  # per operation and mode: about 25 s for the whole document on a busy 2-core machine


@pytest.fixture
def api(server: Any) -> Iterator[httpx.Client]:
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        yield client


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    for word in words:
        assert word in json.dumps(body), (word, body)
    return body


def lamp(api: httpx.Client) -> tuple[str, str]:
    pk = api.post("/api/products", json={"name": "Streetlight"}).json()["productKey"]
    assert api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"}).is_success
    return pk, f"/api/products/{pk}/devices/lamp-0001"


def nested(levels: int, inner: str = "1") -> str:
    return '{"a":' * levels + inner + "}" * levels


def test_a_patch_that_changes_nothing_answers_the_product(api: httpx.Client) -> None:
    """Issue 12 case 8: PATCH /api/products/{pk} with {} was a bare 500 (an UPDATE with
    nothing to SET); it changes nothing and answers the product, 404 for an unknown one."""
    pk, _ = lamp(api)
    unchanged = api.patch(f"/api/products/{pk}", json={})
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json()["name"] == "Streetlight"
    problem(api.patch("/api/products/a1NoSuchPrd", json={}), 404)


def test_numbers_beyond_64_bits_in_queries_are_400(api: httpx.Client) -> None:
    """Issue 12 case 8: offset=9223372036854775808 (and history from/to far beyond any
    calendar) were 500s; each is a 400 naming the parameter or the range."""
    _, device = lamp(api)
    problem(api.get("/api/devices", params={"offset": str(2**63)}), 400, "offset")
    assert api.get("/api/devices", params={"offset": str(2**63 - 1)}).json()["items"] == []
    for params in (
        {"from": "-1e20"},
        {"to": "1e20"},
        {"from": "-100000000000000000000"},
        {"to": "100000000000000000000"},
        {"from": "0001-01-01T00:00:00-05:00", "every": "1d", "tz": "America/New_York"},
    ):
        problem(api.get(device + "/history/Brightness", params=params), 400, "time")
    whole = {"from": "0001-01-02T00:00:00Z", "to": "9999-12-30T00:00:00Z"}
    assert api.get(device + "/history/Brightness", params=whole).is_success


def test_buckets_wider_than_a_calendar_are_400(api: httpx.Client) -> None:
    """Issue 12 case 8: every=99999999999y was a 500 (a date past year 9999); a bucket is
    at most 10,000 years, and one that runs past the calendar ends with the range."""
    _, device = lamp(api)
    problem(api.get(device + "/history/Brightness", params={"every": "99999999999y"}), 400, "every")
    problem(api.get(device + "/history/Brightness", params={"every": "999999999999s"}), 400)
    late = {"from": "9990-01-01T00:00:00Z", "to": "9999-12-30T00:00:00Z", "every": "5000y"}
    assert api.get(device + "/history/Brightness", params=late).is_success


def test_json_nested_too_deep_is_400(api: httpx.Client) -> None:
    """Issue 12 case 8: a JSON body nested 100,000 deep on POST /api/products, and a shadow
    desired nested 5,000 deep, were 500s (RecursionError in the decoder); both are 400 and the
    shadow keeps what it had."""
    _, device = lamp(api)
    headers = {"content-type": "application/json"}
    deep = "[" * 100_000 + "]" * 100_000
    problem(api.post("/api/products", content=deep, headers=headers), 400, "nested")
    assert api.put(device + "/shadow", json={"desired": {"Brightness": 40}}).is_success
    body = '{"desired": {"x": ' + nested(5_000) + "}}"
    problem(api.put(device + "/shadow", content=body, headers=headers), 400, "nested")
    # deep enough to decode, too deep to compare and store: Alibaba's 400 (incorrect JSON)
    body = '{"desired": {"x": ' + nested(500) + "}}"
    problem(api.put(device + "/shadow", content=body, headers=headers), 400, "nest")
    body = '{"desired": {"x": ' + nested(32) + "}}"
    assert api.put(device + "/shadow", content=body, headers=headers).is_success
    shadow = api.get(device + "/shadow").json()
    assert shadow["version"] == 2 and shadow["state"]["desired"]["Brightness"] == 40


def test_a_fault_of_ours_is_a_logged_problem_500(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 12 case 8: unexpected exceptions were answered by Litestar's bare JSON 500 and
    logged nowhere; they are problem+json and logged with their traceback."""

    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise ValueError("a bug")

    app = Litestar([boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    with caplog.at_level(logging.ERROR, "hongshan.api"), TestClient(app) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 500 and "ValueError" in response.json()["detail"]
    assert "a bug" not in response.text  # (the log has it)
    [record] = [r for r in caplog.records if r.name == "hongshan.api"]
    assert record.exc_info is not None and record.exc_info[1] is not None
    assert str(record.exc_info[1]) == "a bug"


def test_a_store_failure_is_told_from_a_fault_of_ours() -> None:
    """Issue 12 case 8: a full disk is the store's (503), a bad statement ours (500)."""
    from hongshan.store.faults import store_failure  # (new with the fix)

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA max_page_count = 2")  # (SQLite's own limit: "database or disk is full")
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", ("x" * 1000,))
    assert "disk is full" in (store_failure(full.value) or "")
    with pytest.raises(sqlite3.OperationalError) as bad:
        db.execute("UPDATE t SET WHERE x = 1")
    assert store_failure(bad.value) is None
    assert "disk is full" in (store_failure(OSError(28, "No space left on device")) or "")


@pytest.fixture
def full_disk() -> Iterator[threading.Event]:
    """Set it, and every SQLite database a pool hands out is full: SQLite's max_page_count
    (clamped to the database's current size) makes any write that needs a page fail as on a
    full disk (SQLITE_FULL, "database or disk is full")."""
    full = threading.Event()

    def checkout(connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(connection, sqlite3.Connection):
            pages = 1 if full.is_set() else 1_073_741_823
            connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(sa.pool.Pool, "checkout", checkout)
    yield full
    sa.event.remove(sa.pool.Pool, "checkout", checkout)


def test_devices_created_while_the_disk_is_full_are_503(
    full_disk: threading.Event, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12 case 8: device create while the disk is full was a bare 500; it is a 503 that
    says the disk is full, logged, and every device answered 201 is kept."""
    pk = api.post("/api/products", json={"name": "Streetlight"}).json()["productKey"]
    full_disk.set()
    created, refused = [], []
    with caplog.at_level(logging.ERROR, "hongshan.api"):
        for n in range(500):
            name = f"lamp-{n:04}"
            answer = api.post(f"/api/products/{pk}/devices", json={"deviceName": name})
            if answer.status_code == 201:
                created.append(name)
            else:
                refused.append(problem(answer, 503, "disk is full"))
                break
    full_disk.clear()
    assert refused, "the disk never filled"
    assert any(
        r.name == "hongshan.api" and "disk is full" in r.getMessage() for r in caplog.records
    )
    listed = api.get("/api/devices", params={"productKey": pk, "limit": 1000}).json()
    assert sorted(d["deviceName"] for d in listed["items"]) == created
    assert api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-late"}).is_success


def test_requests_failed_by_a_full_disk_are_one_line_in_the_log(
    full_disk: threading.Event, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12 case 15: on a full disk, 100 device creates were 100 503s (right) but 6,400
    log lines and 200 tracebacks, one for each. A store failure is said once per kind per
    interval and without a traceback (it is the disk's state, not a fault in our code)."""
    pk = api.post("/api/products", json={"name": "Streetlight"}).json()["productKey"]
    full_disk.set()
    devices = f"/api/products/{pk}/devices"
    with caplog.at_level(logging.WARNING):
        for n in range(500):  # (what pages the database had free are taken first)
            if api.post(devices, json={"deviceName": f"lamp-{n:04}"}).status_code == 503:
                break
        for n in range(100):
            problem(api.post(devices, json={"deviceName": f"full-{n:04}"}), 503, "disk is full")
    full_disk.clear()
    said = [r for r in caplog.records if r.name == "hongshan.api"]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "disk is full" in said[0].getMessage()
    assert not any(r.exc_info for r in caplog.records), "a traceback for a full disk"


def test_a_shadow_version_beyond_64_bits_is_refused(
    server: Any, api: httpx.Client, paho_client: Any
) -> None:
    """Issue 12 case 9: a shadow version beyond int64 was answered success and silently not
    stored (the database refused it in the background); it is refused with Alibaba's shadow
    error 403 over MQTT and 400 over the API, and the shadow keeps its version."""
    pk, device = online_lamp(server, paho_client)
    path = f"/api/products/{pk}/devices/lamp-0001/shadow"
    device.subscribe(f"/shadow/get/{pk}/lamp-0001", qos=1)
    update = f"/shadow/update/{pk}/lamp-0001"
    for version in (2**63, 2**64 + 5):
        report = {"method": "update", "state": {"reported": {"Brightness": 40}}}
        device.publish(update, json.dumps({**report, "version": version}), qos=1)
        answer = json.loads(device.get().payload)["payload"]
        assert answer["status"] == "error" and answer["content"]["errorcode"] == "403"
        problem(api.put(path, json={"desired": {"Brightness": 1}, "version": version}), 400, "403")
    report = {"method": "update", "state": {"reported": {"Brightness": 40}}, "version": 2**63 - 1}
    device.publish(update, json.dumps(report), qos=1)
    assert json.loads(device.get().payload)["payload"] == {
        "status": "success",
        "version": 2**63 - 1,
    }
    assert api.get(path).json()["version"] == 2**63 - 1
    problem(api.put(path, json={"desired": {"Brightness": 1}}), 400, "403")  # no next one


def test_a_shadow_nested_too_deep_over_mqtt_is_refused(server: Any, paho_client: Any) -> None:
    """Issue 12 case 8: a shadow update nested 5,000 deep over MQTT raised out of the shadow
    service; it is answered Alibaba's 400 (incorrect JSON format)."""
    pk, device = online_lamp(server, paho_client)
    device.subscribe(f"/shadow/get/{pk}/lamp-0001", qos=1)
    for levels in (5_000, 100):
        body = '{"method":"update","version":1,"state":{"reported":{"x":' + nested(levels) + "}}}"
        device.publish(f"/shadow/update/{pk}/lamp-0001", body, qos=1)
        answer = json.loads(device.get().payload)["payload"]
        assert answer["status"] == "error" and answer["content"]["errorcode"] == "400"


def test_retention_days_are_bounded(api: httpx.Client) -> None:
    """Issue 12 case 12: rawDays 1e308 was accepted, and its cutoff (no integer holds it)
    failed the retention pass of every product; days are at most 36,500 (a century), and one
    saved before the bound is kept for ever, as it meant."""
    pk, _ = lamp(api)
    url = f"/api/products/{pk}/retention"
    problem(api.put(url, json={"rawDays": 1e308}), 400, "rawDays", "36500")
    problem(api.put(url, json={"rollupDays": 36_501}), 400, "rollupDays")
    assert api.put(url, json={"rawDays": 36_500}).json()["rawDays"] == 36_500
    assert Retention(raw_days=1e308, rollup_days=1).cutoffs(DAY_MS)[0] is None


def test_admin_input_is_bounded_by_alibabas_limits(api: httpx.Client) -> None:
    """Issue 12 case 12: a TSL array of size 1e9, latitude 500, a 1 MB product name, 10,000
    tags and the group name ../../x were accepted; each is a 400 naming the field and the
    limit, and the values at the limits are accepted."""
    pk, device = lamp(api)
    problem(api.post("/api/products", json={"name": "x" * 1_000_000}), 400, "product name", "30")
    problem(api.post("/api/products", json={"name": "=HYPERLINK(1)"}), 400, "product name")
    problem(api.patch(f"/api/products/{pk}", json={"name": "Air station"}), 400, "product name")
    assert api.post("/api/products", json={"name": "路灯_Lamp-2(east)@" + "x" * 9}).is_success
    array = {"type": "array", "specs": {"size": 1e9, "item": {"type": "int"}}}
    levels = {"identifier": "Levels", "name": "L", "accessMode": "rw", "dataType": array}
    tsl = {"properties": [levels]}
    problem(api.put(f"/api/products/{pk}/thing-model", json=tsl), 400, "size", "512")
    array["specs"]["size"] = 512  # type: ignore[index]
    assert api.put(f"/api/products/{pk}/thing-model", json=tsl).is_success
    devices = f"/api/products/{pk}/devices"
    for place, field in (({"lat": 500, "lon": 1}, "lat"), ({"lat": 1, "lon": -181}, "lon")):
        body = {"deviceName": "lamp-0002", "location": place}
        problem(api.post(devices, json=body), 400, field)
    edge = {"lat": -90, "lon": 180, "district": "east"}
    assert api.post(devices, json={"deviceName": "lamp-0002", "location": edge}).is_success
    many = {f"k{i}": "v" for i in range(10_000)}
    problem(api.post(devices, json={"deviceName": "lamp-0003", "tags": many}), 400, "tags")
    problem(api.post(devices, json={"deviceName": "lamp-0003", "tags": {"k" * 31: "v"}}), 400)
    problem(api.post(devices, json={"deviceName": "lamp-0003", "tags": {"k": "v" * 129}}), 400)
    hundred = {f"k{i}": "v" * 128 for i in range(100)}
    assert api.post(devices, json={"deviceName": "lamp-0003", "tags": hundred}).is_success
    one_more = {"tags": {"k100": "v"}}
    problem(api.patch(devices + "/lamp-0003", json=one_more), 400, "100")
    swap = {"tags": {"k100": "v"}, "removeTags": ["k0"]}
    assert api.patch(devices + "/lamp-0003", json=swap).json()["tags"]["k100"] == "v"
    problem(api.post("/api/groups", json={"name": "../../x"}), 400, "group name")
    assert api.post("/api/groups", json={"name": "新华路_east"}).is_success
    assert api.get(device).is_success


def test_latest_values_can_be_had_as_csv(server: Any, api: httpx.Client, paho_client: Any) -> None:
    """Issue 12 case 12: /api/history/latest?format=csv answered JSON; it answers CSV, a row
    per value (a device without values has a row without one).

    Issue 12 case 10: CSV exports wrote device-supplied text as is; a cell that a spreadsheet
    would run as a formula (= + - @ TAB CR) starts with a quote, and a NUL is shown as
    U+FFFD."""
    pk, device = online_lamp(server, paho_client)
    api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0002"})
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    device.subscribe(topic + "_reply", qos=1)
    link = '=HYPERLINK("http://evil.example","x")'
    params = {"Label": link, "Note": "a\0b", "Level": -5, "Sign": "@SUM(1)", "Plain": "ok"}
    device.publish(topic, json.dumps({"id": "1", "params": params}), qos=1)
    assert json.loads(device.get().payload)["code"] == 200
    answer = api.get("/api/history/latest", params={"format": "csv", "productKey": pk})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.split("\r\n")
    assert lines[0] == "productKey,deviceName,district,lat,lon,identifier,value,ts,time"
    cells = {line.split(",")[5]: line for line in lines[1:] if line.count(",") > 5}
    assert ',"\'=HYPERLINK(""http://evil.example""' in cells["Label"]
    assert ",'@SUM(1)," in cells["Sign"] and ",ok," in cells["Plain"]
    assert ",a\ufffdb," in cells["Note"] and "\0" not in answer.text
    assert ",-5," in cells["Level"]  # a number is no formula
    assert f"{pk},lamp-0002,,,\r\n" in answer.text
    history = api.get(
        f"/api/products/{pk}/devices/lamp-0001/history/Label", params={"format": "csv"}
    )
    assert "'=HYPERLINK(" in history.text and ",=" not in history.text
    problem(api.get("/api/history/latest", params={"format": "xml"}), 400)


def test_names_that_are_formulas_are_refused(api: httpx.Client) -> None:
    """Issue 12 case 10: a TSL identifier or a district starting with = (or + - @) was
    accepted and reached CSV exports' headers and keys; identifiers follow Alibaba's rule
    (letters, digits, underscores, at most 50) and a district cannot start like a formula."""
    pk, _ = lamp(api)
    for identifier in ("=cmd|' /C calc'!A0", "-1", "a b", "x" * 51):
        feature = {"identifier": identifier, "name": "n", "accessMode": "rw"}
        tsl = {"properties": [{**feature, "dataType": {"type": "int", "specs": {}}}]}
        problem(api.put(f"/api/products/{pk}/thing-model", json=tsl), 400, "identifier")
    for district in ("=1+1", "@x", "+x", "-x", "\tx"):
        place = {"lat": 1, "lon": 1, "district": district}
        body = {"deviceName": "lamp-0002", "location": place}
        problem(api.post(f"/api/products/{pk}/devices", json=body), 400, "district")
    place = {"lat": 1, "lon": 1, "district": "新华区 east-1"}
    assert api.post(
        f"/api/products/{pk}/devices", json={"deviceName": "lamp-0002", "location": place}
    ).is_success


@pytest.mark.timeout(600)  # (40 cases per operation and mode: the document has ~100 now)
def test_the_api_keeps_to_its_openapi_document(server: Any) -> None:
    """Issue 12 "also": schemathesis sends each operation of the OpenAPI document data made
    from its schema (valid, then invalid): no answer is a 500, and every status answered is
    one the document declares."""
    base = f"http://127.0.0.1:{server.ports['http']}"
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    admin = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(base + "/api/schema/openapi.json")
    checks = [not_a_server_error, status_code_conformance]
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                case.call_and_validate(base_url=base, headers=admin, checks=checks, timeout=30)

            try:
                call()
            except Unsatisfiable:  # (nothing to break in an operation without parameters)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # (all tried, the failures listed)
                failures.append(f"{operation.label} ({mode.value}): {_first_lines(exc)}")
    assert not failures, "\n\n".join(failures)


def _first_lines(exc: BaseException) -> str:
    """What schemathesis found, without the reproduction recipe after it."""
    found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
    return " | ".join(" ".join(str(one).split("\n")[:4]) for one in found)


def test_batches_and_thing_models_are_bounded_by_alibabas_limits(api: httpx.Client) -> None:
    """Issue 12 case 12, near variants: a batch of 100,000 deviceNames made 100,000 devices
    (a count was capped at 10,000, a list not), and a TSL with 20,000 properties or an enum of
    100,000 values was accepted. Each is a 400 naming the limit (Alibaba's: 300 features a
    TSL module, 50 struct members, 100 enum values, 100 parameters a service or event); at
    the limits they are accepted."""
    pk, _ = lamp(api)
    batch = f"/api/products/{pk}/devices/batch"
    names = [f"n-{i:06}" for i in range(10_001)]
    problem(api.post(batch, json={"deviceNames": names}), 400, "deviceNames", "10000")
    assert api.get("/api/devices", params={"productKey": pk}).json()["total"] == 1
    model = f"/api/products/{pk}/thing-model"

    def feature(i: int, data_type: dict[str, Any]) -> dict[str, Any]:
        return {"identifier": f"p{i}", "name": f"P{i}", "accessMode": "rw", "dataType": data_type}

    number = {"type": "int", "specs": {"min": "0", "max": "9"}}
    many = {"properties": [feature(i, number) for i in range(20_000)]}
    problem(api.put(model, json=many), 400, "20000", "300")
    enum = {"type": "enum", "specs": {str(i): f"v{i}" for i in range(100_000)}}
    problem(api.put(model, json={"properties": [feature(0, enum)]}), 400, "100000", "100")
    members = [{"identifier": f"m{i}", "name": "m", "dataType": number} for i in range(51)]
    struct = {"type": "struct", "specs": members}
    problem(api.put(model, json={"properties": [feature(0, struct)]}), 400, "51", "50")
    inputs = [{"identifier": f"i{i}", "name": "i", "dataType": number} for i in range(101)]
    service = {"identifier": "Blink", "name": "B", "callType": "async", "inputData": inputs}
    problem(api.put(model, json={"services": [service]}), 400, "inputData", "100")
    enum["specs"] = {str(i): f"v{i}" for i in range(100)}
    struct["specs"] = members[:50]
    service["inputData"] = inputs[:100]
    at_limits = [feature(0, enum), feature(1, struct)]
    at_limits += [feature(i, number) for i in range(2, 299)]
    # (Alibaba's generated post event lists every property: not a feature of its own)
    post = {
        "identifier": "post",
        "name": "post",
        "type": "info",
        "method": "thing.event.property.post",
    }
    post["outputData"] = [
        {"identifier": p["identifier"], "name": "p", "dataType": number} for p in at_limits
    ]
    tsl = {"properties": at_limits, "services": [service], "events": [post]}
    answered = api.put(model, json=tsl)
    assert answered.is_success, answered.text
