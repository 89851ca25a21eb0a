"""``/api/alarms`` and ``/api/alarm-notifications`` over real HTTP: the round trip, filters and
pages, and every refusal as problem+json naming what was wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from alarm_helpers import created, problem

from alibaba_device import lamps
from broker_peers import eventually
from webhook_receiver import WebhookReceiver


def test_an_operators_alarm_round_trip(server: Any, api: httpx.Client) -> None:
    pk, _ = lamps(server, "lamp-0001", "lamp-0002")
    first = created(
        api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "lamp-0001", "type": "Pole leaning",
                  "severity": "warning", "details": {"deg": 7}, "by": "ana"},
        )
    )  # fmt: skip
    assert first["status"] == "ACTIVE_UNACK" and first["originator"] == {"kind": "api", "id": "ana"}
    assert first["repeats"] == 0 and first["notes"] == [] and first["assignee"] is None
    again = created(
        api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "lamp-0001", "type": "Pole leaning",
                  "severity": "major"},
        )
    )  # fmt: skip
    assert again["id"] == first["id"] and again["repeats"] == 1 and again["severity"] == "major"
    other = created(
        api.post(
            "/api/alarms",
            json={
                "productKey": pk,
                "deviceName": "lamp-0002",
                "type": "Door open",
                "severity": "minor",
            },
        )
    )
    assigned = api.post(f"/api/alarms/{first['id']}/assign", json={"assignee": "bo"})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "bo"
    noted = created(
        api.post(f"/api/alarms/{first['id']}/notes", json={"text": "crew sent", "by": "bo"})
    )
    assert [(n["by"], n["text"]) for n in noted["notes"]] == [("bo", "crew sent")]
    cleared = api.post(f"/api/alarms/{other['id']}/clear", json={"by": "cy"}).json()
    assert cleared["status"] == "CLEARED_UNACK" and cleared["clearedBy"] == "cy"
    acked = api.post(f"/api/alarms/{other['id']}/ack").json()
    assert acked["status"] == "CLEARED_ACK" and acked["acknowledgedBy"] == "api"

    def ids(**params: Any) -> list[int]:
        page = api.get("/api/alarms", params=params)
        assert page.status_code == 200, page.text
        return [alarm["id"] for alarm in page.json()["items"]]

    assert ids() == [other["id"], first["id"]]
    assert ids(status="ACTIVE") == [first["id"]] == ids(assignee="bo")
    assert ids(status="CLEARED_ACK") == [other["id"]] == ids(deviceName="lamp-0002")
    assert ids(severity="major") == [first["id"]] == ids(minSeverity="major")
    assert ids(type="Door open", productKey=pk) == [other["id"]]
    assert ids(limit=1, offset=1) == [first["id"]]
    assert api.get("/api/alarms", params={"limit": 1}).json()["total"] == 2
    unassigned = api.post(f"/api/alarms/{first['id']}/assign", json={"assignee": None}).json()
    assert unassigned["assignee"] is None
    document = api.get("/api/schema/openapi.json").json()["paths"]
    for path in ("/api/alarms", "/api/alarms/{alarm_id}/ack", "/api/alarm-notifications"):
        assert path in document, sorted(document)


def test_every_bad_alarm_request_is_named(server: Any, api: httpx.Client) -> None:
    pk, _ = lamps(server, "lamp-0001")
    device = {"productKey": pk, "deviceName": "lamp-0001"}
    problem(api.post("/api/alarms", json={**device, "deviceName": "x", "type": "t"}), 400,
            "no device x")  # fmt: skip
    problem(api.post("/api/alarms", json={**device, "type": ""}), 400, "type")
    problem(api.post("/api/alarms", json={**device, "type": "t", "severity": "huge"}), 400,
            "severity")  # fmt: skip
    problem(
        api.post("/api/alarms", json={**device, "type": "t", "escalation": {"after": 5}}),
        400,
        "both after",
    )
    problem(api.post("/api/alarms", json={**device, "type": "t", "colour": 1}), 400, "colour")
    problem(api.get("/api/alarms", params={"status": "OPENISH"}), 400, "status")
    problem(api.get("/api/alarms", params={"limit": 0}), 400, "limit")
    problem(api.get("/api/alarms/999"), 404, "no alarm 999")
    problem(api.post("/api/alarms/999/ack"), 404, "no alarm 999")
    problem(api.post("/api/alarms/999/notes", json={"text": "x"}), 404, "no alarm 999")
    alarm = created(api.post("/api/alarms", json={**device, "type": "t"}))
    problem(api.post(f"/api/alarms/{alarm['id']}/notes", json={"text": " "}), 400, "a note")
    problem(api.post(f"/api/alarms/{alarm['id']}/assign", json={}), 400, "assignee")


def test_notification_routes_round_trip_and_refusals(
    server: Any, api: httpx.Client, receivers: Callable[..., WebhookReceiver]
) -> None:
    url = receivers().url
    route = created(
        api.post(
            "/api/alarm-notifications",
            json={"name": "ops", "kind": "webhook", "url": url, "minSeverity": "major"},
        )
    )
    assert len(route["secret"]) == 32 and route["changes"] == [
        "raised", "escalated", "reminder", "acknowledged", "cleared"
    ]  # fmt: skip
    shown = api.get(f"/api/alarm-notifications/{route['id']}").json()
    assert "secret" not in shown and shown["minSeverity"] == "major" and shown["sent"] == 0
    problem(
        api.post("/api/alarm-notifications", json={"name": "ops", "kind": "webhook", "url": url}),
        409,
        "named ops",
    )
    for body, words in [
        ({"name": "a", "kind": "webhook", "url": "ftp://x"}, "no http"),
        ({"name": "a", "kind": "email"}, "at least one address"),
        ({"name": "a", "kind": "email", "to": ["not-an-address"]}, "no e-mail address"),
        ({"name": "a", "kind": "pager", "url": url}, "kind"),
        ({"name": "a", "kind": "webhook", "url": url, "changes": ["exploded"]}, "changes"),
        ({"name": "a", "kind": "webhook", "url": url, "changes": []}, "at least one"),
        ({"name": "a", "kind": "webhook", "url": url, "retries": 99}, "retries 99"),
        # (this server has no smtp_host)
        ({"name": "a", "kind": "email", "to": ["ops@town.example"]}, "smtp_host"),
    ]:
        problem(api.post("/api/alarm-notifications", json=body), 400, words)
    changed = api.put(
        f"/api/alarm-notifications/{route['id']}",
        json={"name": "ops", "kind": "webhook", "url": url, "changes": ["cleared"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["changes"] == ["cleared"] and "secret" not in changed.json()
    problem(
        api.put(f"/api/alarm-notifications/{route['id']}", json={"name": "ops", "kind": "email"}),
        400,
        "at least one address",
    )
    problem(
        api.put("/api/alarm-notifications/999", json={"name": "o", "kind": "webhook", "url": url}),
        404,
        "no route 999",
    )
    assert api.delete(f"/api/alarm-notifications/{route['id']}").status_code == 204
    problem(api.delete(f"/api/alarm-notifications/{route['id']}"), 404, "no route")
    assert api.get("/api/alarm-notifications").json()["items"] == []


def test_a_failing_route_keeps_its_error_and_the_alarm_goes_on(
    server: Any, api: httpx.Client, receivers: Callable[..., WebhookReceiver]
) -> None:
    down = receivers([503] * 10)
    route = created(
        api.post(
            "/api/alarm-notifications",
            json={"name": "down", "kind": "webhook", "url": down.url, "retries": 1,
                  "backoff": 0.01},
        )
    )  # fmt: skip
    pk, _ = lamps(server, "lamp-0001")
    alarm = created(
        api.post("/api/alarms", json={"productKey": pk, "deviceName": "lamp-0001", "type": "t"})
    )
    down.get()
    down.get()  # (tried again once)
    acked = api.post(f"/api/alarms/{alarm['id']}/ack")
    assert acked.status_code == 200 and acked.json()["status"] == "ACTIVE_ACK"
    down.get()
    eventually(
        lambda: api.get(f"/api/alarm-notifications/{route['id']}").json()["failed"] == 2,
        what="two failures counted",
    )
    shown = api.get(f"/api/alarm-notifications/{route['id']}").json()
    assert shown["lastError"] == f"webhook {down.url}: HTTP 503 after 2 tries"
    assert shown["sent"] == 0 and shown["lastErrorAt"] > 0


def test_a_type_with_a_line_break_is_refused_a_note_may_have_them(
    server: Any, api: httpx.Client
) -> None:
    pk, _ = lamps(server, "lamp-0001")
    device = {"productKey": pk, "deviceName": "lamp-0001"}
    problem(api.post("/api/alarms", json={**device, "type": "a\r\nBcc: x@y"}), 400,
            "no control characters")  # fmt: skip
    alarm = created(api.post("/api/alarms", json={**device, "type": "t"}))
    noted = api.post(f"/api/alarms/{alarm['id']}/notes", json={"text": "one\ntwo"})
    assert noted.status_code == 201 and noted.json()["notes"][0]["text"] == "one\ntwo"
