"""Roles on the routes over real HTTP: a viewer reads, an operator also controls devices and
handles alarms, only an admin changes the rest. And the table of every route's least role."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from people_api import ADMIN_PASSWORD, add_user, bearer_client, token_client

from hongshan.api.auth import least_role
from hongshan.http import ADMIN_ROUTES
from hongshan.identity.principals import Role

TSL = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"
PASSWORD = "a long password 1"


@pytest.fixture
def server(make_server: Any) -> Any:
    return make_server(admin_password=ADMIN_PASSWORD)


def a_lamp_and_an_alarm(server: Any) -> tuple[str, int]:
    with token_client(server) as api:
        tsl = json.loads(TSL.read_text())
        made = api.post("/api/products", json={"name": "Lamp", "thingModel": tsl})
        pk = made.json()["productKey"]
        api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"})
        alarm = api.post(
            "/api/alarms", json={"productKey": pk, "deviceName": "lamp-0001", "type": "dark"}
        )
        assert alarm.status_code == 201, alarm.text
        return pk, alarm.json()["id"]


def test_a_viewer_reads_and_changes_nothing(server: Any) -> None:
    pk, alarm_id = a_lamp_and_an_alarm(server)
    add_user(server, "vera", "viewer", PASSWORD)
    with bearer_client(server, "vera", PASSWORD) as vera:
        assert vera.get("/api/products").status_code == 200
        assert vera.get(f"/api/alarms/{alarm_id}").status_code == 200
        refused = vera.post("/api/products", json={"name": "Bench"})
        assert refused.status_code == 403
        assert "admin" in refused.json()["detail"] and "viewer" in refused.json()["detail"]
        assert vera.post(f"/api/alarms/{alarm_id}/ack").status_code == 403
        device = f"/api/products/{pk}/devices/lamp-0001"
        assert (
            vera.post(device + "/properties", json={"params": {"Brightness": 40}}).status_code
            == 403
        )
        assert vera.get(device + "/credentials").status_code == 403
        assert vera.get(f"/api/products/{pk}", params={"secret": "true"}).status_code == 403
        assert vera.get("/api/users").status_code == 403


def test_an_operator_acks_alarms_and_sets_properties_but_makes_no_product(server: Any) -> None:
    pk, alarm_id = a_lamp_and_an_alarm(server)
    add_user(server, "olga", "operator", PASSWORD)
    with bearer_client(server, "olga", PASSWORD) as olga:
        claimed = olga.post(f"/api/alarms/{alarm_id}/ack", json={"by": "somebody else"})
        assert claimed.status_code == 400 and "olga" in claimed.json()["detail"]
        acked = olga.post(f"/api/alarms/{alarm_id}/ack")
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledgedBy"] == "olga"
        noted = olga.post(f"/api/alarms/{alarm_id}/notes", json={"text": "on it", "by": "olga"})
        assert noted.json()["notes"][0]["by"] == "olga"
        device = f"/api/products/{pk}/devices/lamp-0001"
        sent = olga.post(device + "/properties", json={"params": {"Brightness": 40}})
        assert sent.status_code == 200 and sent.json()["code"] == 9200  # (offline)
        assert olga.post("/api/products", json={"name": "Bench"}).status_code == 403
        assert olga.post("/api/groups", json={"name": "Xinhua_Road"}).status_code == 403
        assert olga.delete(device).status_code == 403


OPERATOR_ROUTES = {
    ("POST", "/api/alarms"),
    ("POST", "/api/alarms/{alarm_id:int}/ack"),
    ("POST", "/api/alarms/{alarm_id:int}/clear"),
    ("POST", "/api/alarms/{alarm_id:int}/assign"),
    ("POST", "/api/alarms/{alarm_id:int}/notes"),
    ("POST", "/api/commands"),
    ("POST", "/api/commands/{command_id:int}/cancel"),
    ("POST", "/api/products/{pk:str}/devices/{dn:str}/properties"),
    ("POST", "/api/products/{pk:str}/devices/{dn:str}/services/{identifier:str}"),
    ("PUT", "/api/products/{pk:str}/devices/{dn:str}/shadow"),
    ("PUT", "/api/products/{pk:str}/devices/{dn:str}/desired"),
    ("POST", "/api/products/{pk:str}/devices/{dn:str}/rrpc"),
    ("POST", "/api/rules"),
    ("POST", "/api/rules/check"),
    ("POST", "/api/rules/backtest"),
    ("PUT", "/api/rules/{rule_id:int}"),
    ("POST", "/api/rules/{rule_id:int}/enable"),
    ("POST", "/api/rules/{rule_id:int}/disable"),
    ("DELETE", "/api/rules/{rule_id:int}"),
    ("POST", "/api/scenes"),
    ("POST", "/api/scenes/backtest"),
    ("PUT", "/api/scenes/{scene_id:int}"),
    ("POST", "/api/scenes/{scene_id:int}/enable"),
    ("POST", "/api/scenes/{scene_id:int}/disable"),
    ("DELETE", "/api/scenes/{scene_id:int}"),
    ("POST", "/api/products/{pk:str}/alarm-conditions"),
    ("PUT", "/api/alarm-conditions/{condition_id:int}"),
    ("DELETE", "/api/alarm-conditions/{condition_id:int}"),
    ("POST", "/api/alarm-conditions/backtest"),
}
# the changes any user may make: of their own session and password
ANYONE_MAY = {("POST", "/api/auth/logout"), ("PUT", "/api/users/{name:str}/password")}
ADMIN_READS = {("GET", "/api/users"), ("GET", "/api/users/{name:str}")}
ADMIN_READS.add(("GET", "/api/products/{pk:str}/devices/{dn:str}/credentials"))


def test_each_route_has_the_least_role_the_issue_gives_it() -> None:
    """Reads are a viewer's, the operator's changes above, every other change an admin's."""
    seen = set()
    for handler in ADMIN_ROUTES:
        for path in handler.paths:
            for method in handler.http_methods:
                key = (method, path)
                seen.add(key)
                if key in OPERATOR_ROUTES:
                    want = Role.OPERATOR
                elif key in ANYONE_MAY:
                    want = Role.VIEWER
                elif key in ADMIN_READS or method != "GET":
                    want = Role.ADMIN
                else:
                    want = Role.VIEWER
                assert least_role(handler) is want, key
    assert seen >= OPERATOR_ROUTES | ANYONE_MAY | ADMIN_READS
