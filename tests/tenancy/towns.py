"""Two towns on one Hongshan, each built over the REST API by its own people: a tenant, its
admin, operator and viewer (and a viewer limited to its clinic group), a streetlight product
with two lamps, the clinic group holding the first, a rule, a scene, an alarm, an alarm
condition, a notification route, an API key, a queued command and a batch, and history (the
first lamp posted a value over MQTT)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from alibaba_device import signed
from broker_peers import Paho, eventually

STREETLIGHT = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"
PASSWORD = "a long password 1"
ROLES = ("admin", "operator", "viewer")


def base_url(server: Any) -> str:
    return f"http://127.0.0.1:{server.ports['http']}"


def admin_token(server: Any) -> str:
    return (Path(server.settings.data_dir) / "admin.token").read_text().strip()


def client(server: Any, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url(server), headers={"Authorization": f"Bearer {token}"})


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Town:
    """A tenant's people (an access token each) and the ids of what it holds."""

    tenant: str
    tokens: dict[str, str] = field(default_factory=dict)  # role (and "clinic") -> token
    pk: str = ""
    lamps: tuple[str, str] = ("lamp-1", "lamp-2")
    secrets: dict[str, str] = field(default_factory=dict)
    group: str = ""
    ids: dict[str, int] = field(default_factory=dict)  # rule, scene, alarm, … -> id
    user: str = ""  # its viewer's name

    @property
    def lamp(self) -> str:
        return self.lamps[0]


def log_in(server: Any, name: str) -> str:
    answer = httpx.post(
        base_url(server) + "/api/auth/login", json={"username": name, "password": PASSWORD}
    )
    token: str = created(answer)["accessToken"]
    return token


def build(server: Any, tenant: str) -> Town:
    town = Town(tenant=tenant, group=f"clinic_{tenant}", user=f"{tenant}-viewer")
    with client(server, admin_token(server)) as system:
        created(system.post("/api/tenants", json={"id": tenant, "name": tenant.title()}))
        for role in ROLES:
            body = {"name": f"{tenant}-{role}", "password": PASSWORD, "role": role}
            created(system.post("/api/users", json={**body, "tenant": tenant}))
    for role in ROLES:
        town.tokens[role] = log_in(server, f"{tenant}-{role}")
    with client(server, town.tokens["admin"]) as admin:
        tsl = json.loads(STREETLIGHT.read_text())
        town.pk = created(admin.post("/api/products", json={"name": "Lamp", "thingModel": tsl}))[
            "productKey"
        ]
        for name in town.lamps:
            place = {"lat": 31.49, "lon": 120.43}  # (on the map: its list is checked too)
            body = {"deviceName": name, "location": place}
            created(admin.post(f"/api/products/{town.pk}/devices", json=body))
            device = f"/api/products/{town.pk}/devices/{name}"
            town.secrets[name] = created(admin.get(device + "/credentials"))["deviceSecret"]
        created(admin.post("/api/groups", json={"name": town.group}))
        member = {"productKey": town.pk, "deviceName": town.lamp}
        created(admin.post(f"/api/groups/{town.group}/devices", json={"devices": [member]}))
        limited = {"name": f"{tenant}-clinic", "password": PASSWORD, "role": "viewer"}
        created(admin.post("/api/users", json={**limited, "groups": [town.group]}))
        town.ids["route"] = created(
            admin.post(
                "/api/alarm-notifications",
                json={"name": f"{tenant}-ops", "kind": "webhook", "url": "http://127.0.0.1:9/"},
            )
        )["id"]
        town.ids["key"] = created(
            admin.post("/api/keys", json={"name": f"{tenant}-billing", "role": "viewer"})
        )["id"]
    town.tokens["clinic"] = log_in(server, f"{tenant}-clinic")
    with client(server, town.tokens["operator"]) as operator:
        town.ids["rule"] = created(
            operator.post(
                "/api/rules",
                json={"name": f"{tenant}-all", "sql": 'SELECT * FROM "/sys/#"', "actions": []},
            )
        )["id"]
        town.ids["scene"] = created(operator.post("/api/scenes", json=scene(town)))["id"]
        town.ids["alarm"] = created(
            operator.post(
                "/api/alarms",
                json={"productKey": town.pk, "deviceName": town.lamp, "type": "dark"},
            )
        )["id"]
        town.ids["condition"] = created(
            operator.post(f"/api/products/{town.pk}/alarm-conditions", json=condition())
        )["id"]
        queued = {"target": {"productKey": town.pk, "deviceName": town.lamps[1]}, "ttl": 3600}
        town.ids["command"] = created(
            operator.post("/api/commands", json={**queued, "set": {"Brightness": 5}})
        )["id"]
        batch = {"target": {"group": town.group}, "set": {"Brightness": 6}, "ttl": 3600}
        town.ids["batch"] = created(operator.post("/api/commands", json=batch))["id"]
    return town


def scene(town: Town) -> dict[str, Any]:
    return {
        "name": f"{town.tenant}-dusk",
        "triggers": [
            {
                "type": "threshold",
                "device": {"productKey": town.pk, "deviceName": town.lamp},
                "property": "Brightness",
                "op": ">",
                "value": 1000,
            }
        ],
        "actions": [
            {
                "type": "set",
                "productKey": town.pk,
                "deviceName": town.lamps[1],
                "values": {"LightSwitch": 1},
            }
        ],
    }


def condition() -> dict[str, Any]:
    return {
        "type": "Overvoltage",
        "create": [
            {
                "severity": "critical",
                "predicates": [{"property": "Voltage", "op": ">", "value": 999}],
            }
        ],
    }


def post_value(server: Any, town: Town, name: str, brightness: int) -> Paho:
    """The lamp online (paho, Alink's signed login) posting a value, and the value in its
    history (asked as the admin token)."""
    lamp = Paho(server.port, **signed(town.pk, name, town.secrets[name])).connect()
    params = {"Brightness": brightness}
    body = {"id": "1", "version": "1.0", "params": params, "method": "thing.event.property.post"}
    topic = f"/sys/{town.pk}/{name}/thing/event/property/post"
    assert lamp.publish(topic, json.dumps(body), 1) == 0
    path = f"/api/products/{town.pk}/devices/{name}/history/Brightness"
    with client(server, admin_token(server)) as system:
        eventually(lambda: bool(system.get(path).json().get("points")))
    return lamp
