"""Tenant B (``south``) tries every operation of the OpenAPI document on tenant A's
(``north``) things: each path filled with A's ids, each body naming A's things. Every answer
is 404 (as if A's thing did not exist), 403 for the admin token's routes (tenants) and 400
for a body that names A's things where there is no path to miss; never a success; and A's
lists and things are the same after. The walk reads the document, so a new endpoint is walked
too: one with a body fails here until its body is written in ``BODIES`` (a body of the wrong
shape would be refused before any scoping, and prove nothing). And every guarded operation
refuses a missing or wrong token (401)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from towns import PASSWORD, STREETLIGHT, Town, admin_token, base_url, client, condition, scene

OPEN = {
    ("GET", "/api/health"),
    ("GET", "/api/health/live"),
    ("GET", "/api/health/ready"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/auth/register/device"),  # a device's dynamic registration, signed by it
}
"""Operations open to callers the platform does not know (no token asked)."""

OWN = {
    ("GET", "/api/auth/me"),
    ("POST", "/api/auth/logout"),
    ("GET", "/metrics"),  # the platform's own counters, no tenant's things
}
"""Operations about the caller or the platform itself, never a tenant's things."""

SYSTEM_ONLY = re.compile(r"^/api/tenants")
"""The admin token's alone: 403 for anyone else."""

Body = Callable[[Town], Any]

BODIES: dict[tuple[str, str], Body] = {
    ("POST", "/api/products"): lambda a: {"name": "Taken", "tenant": a.tenant},
    ("PATCH", "/api/products/{pk}"): lambda a: {"name": "Renamed"},
    ("PUT", "/api/products/{pk}/thing-model"): lambda a: json.loads(STREETLIGHT.read_text()),
    ("POST", "/api/products/{pk}/devices/batch"): lambda a: {"count": 1},
    ("POST", "/api/products/{pk}/devices/{dn}/rrpc"): lambda a: {"payload": "x", "timeout": 1},
    ("PUT", "/api/products/{pk}/devices/{dn}/desired"): lambda a: {"params": {"Brightness": 1}},
    ("PUT", "/api/products/{pk}/devices/{dn}/shadow"): lambda a: {"desired": {"color": "red"}},
    ("POST", "/api/products/{pk}/devices"): lambda a: {"deviceName": "intruder"},
    ("PATCH", "/api/products/{pk}/devices/{dn}"): lambda a: {"nickname": "taken"},
    ("PUT", "/api/products/{pk}/devices/{dn}/credentials"): lambda a: {"newAccessToken": True},
    ("POST", "/api/products/{pk}/devices/{dn}/properties"): lambda a: {"params": {"Brightness": 1}},
    ("POST", "/api/products/{pk}/devices/{dn}/services/{identifier}"): lambda a: {"params": {}},
    ("POST", "/api/groups"): lambda a: {"name": "taken_group", "tenant": a.tenant},
    ("PATCH", "/api/groups/{name}"): lambda a: {"tags": {"taken": "yes"}},
    ("POST", "/api/groups/{name}/devices"): lambda a: {"devices": [_member(a)]},
    ("POST", "/api/groups/{name}/devices/remove"): lambda a: {"devices": [_member(a)]},
    ("PUT", "/api/products/{pk}/retention"): lambda a: {"rawDays": 1},
    ("POST", "/api/rules"): lambda a: _rule(a),
    ("POST", "/api/rules/check"): lambda a: _rule(a),
    ("PUT", "/api/rules/{rule_id}"): lambda a: _rule(a),
    ("POST", "/api/rules/backtest"): lambda a: {"rule": a.ids["rule"], "from": 0, "to": 1000},
    ("POST", "/api/alarms"): lambda a: {"productKey": a.pk, "deviceName": a.lamp, "type": "x"},
    ("POST", "/api/alarms/{alarm_id}/ack"): lambda a: {},
    ("POST", "/api/alarms/{alarm_id}/clear"): lambda a: {},
    ("POST", "/api/alarms/{alarm_id}/assign"): lambda a: {"assignee": "mallory"},
    ("POST", "/api/alarms/{alarm_id}/notes"): lambda a: {"text": "was here"},
    ("POST", "/api/alarm-notifications"): lambda a: {**_route(a), "name": "mallory-ops"},
    ("PUT", "/api/alarm-notifications/{route_id}"): lambda a: _route(a),
    ("POST", "/api/alarm-conditions/backtest"): lambda a: {
        "condition": a.ids["condition"],
        "from": 0,
        "to": 1000,
    },
    ("POST", "/api/products/{pk}/alarm-conditions"): lambda a: condition(),
    ("PUT", "/api/alarm-conditions/{condition_id}"): lambda a: condition(),
    ("POST", "/api/commands"): lambda a: {
        "target": {"productKey": a.pk, "deviceName": a.lamp},
        "set": {"Brightness": 1},
    },
    ("POST", "/api/scenes"): lambda a: scene(a),
    ("PUT", "/api/scenes/{scene_id}"): lambda a: scene(a),
    ("POST", "/api/scenes/backtest"): lambda a: {"scene": a.ids["scene"], "from": 0, "to": 1000},
    ("POST", "/api/users"): lambda a: {
        "name": "mallory",
        "password": PASSWORD,
        "role": "admin",
        "tenant": a.tenant,
    },
    ("PATCH", "/api/users/{name}"): lambda a: {"role": "viewer"},
    ("PUT", "/api/users/{name}/password"): lambda a: {"password": "another long password"},
    ("POST", "/api/keys"): lambda a: {"name": "mallory", "role": "admin", "tenant": a.tenant},
    ("POST", "/api/tenants"): lambda a: {"id": "mallory", "name": "Mallory"},
    ("POST", "/api/auth/login"): lambda a: {},
    ("POST", "/api/auth/refresh"): lambda a: {},
    ("POST", "/auth/register/device"): lambda a: {},
}


QUERIES: dict[tuple[str, str], Callable[[Town], dict[str, str]]] = {
    ("GET", "/api/history/aggregate"): lambda a: {
        "identifier": "Brightness",
        "devices": f"{a.pk}/{a.lamp}",
    },
    ("GET", "/api/history/latest"): lambda a: {"devices": f"{a.pk}/{a.lamp}"},
    ("POST", "/api/alarm-notifications"): lambda a: {"tenant": a.tenant},
    ("POST", "/api/rules"): lambda a: {"tenant": a.tenant},
    ("POST", "/api/scenes"): lambda a: {"tenant": a.tenant},
}
"""Query parameters naming A's things (or tenant) where there is no path to fill: 404 or
400 for those."""


def _member(a: Town) -> dict[str, str]:
    return {"productKey": a.pk, "deviceName": a.lamp}


def _rule(a: Town) -> dict[str, Any]:
    """A rule whose FROM is A's product and whose action sets A's lamp."""
    action = {"type": "set", "productKey": a.pk, "deviceName": a.lamp, "values": {"Brightness": 1}}
    return {"name": f"{a.tenant}-all", "sql": f'SELECT * FROM "/sys/{a.pk}/#"', "actions": [action]}


def _route(a: Town) -> dict[str, Any]:
    return {"name": f"{a.tenant}-ops", "kind": "webhook", "url": "http://127.0.0.1:9/"}


def filled(path: str, a: Town) -> str:
    """The path with A's ids in it."""
    values = {
        "pk": a.pk,
        "dn": a.lamp,
        "identifier": "Brightness",
        "tenant_id": a.tenant,
        **{f"{kind}_id": str(number) for kind, number in a.ids.items()},
    }
    name = a.user if path.startswith("/api/users/") else a.group
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), name), path)


def operations(server: Any) -> list[tuple[str, str]]:
    with client(server, admin_token(server)) as system:
        document = system.get("/api/schema/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((method.upper(), path, "requestBody" in operation))
    assert len(found) > 80, "the document lists the API"
    return [(m, p) for m, p, has_body in found if not has_body or (m, p) in BODIES] + [
        _unwritten(m, p) for m, p, has_body in found if has_body and (m, p) not in BODIES
    ]


def _unwritten(method: str, path: str) -> tuple[str, str]:
    pytest.fail(f"{method} {path} takes a body: write one naming A's things in BODIES")


def snapshot(server: Any, a: Town) -> dict[str, Any]:
    """What A holds, as A's admin reads it (fields that move by themselves left out)."""
    moving = {"state", "lastOnlineAt", "firstOnlineAt", "lastIp", "usedAt", "counts", "updatedAt"}

    def still(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: still(v) for k, v in value.items() if k not in moving}
        if isinstance(value, list):
            return [still(v) for v in value]
        return value

    paths = [
        "/api/products",
        "/api/devices",
        "/api/groups",
        "/api/rules",
        "/api/scenes",
        "/api/alarms",
        "/api/commands",
        "/api/alarm-notifications",
        "/api/users",
        "/api/keys",
        f"/api/products/{a.pk}/alarm-conditions",
        f"/api/products/{a.pk}/thing-model",
        f"/api/products/{a.pk}/retention",
        f"/api/products/{a.pk}/devices/{a.lamp}/shadow",
        f"/api/products/{a.pk}/devices/{a.lamp}/desired",
        f"/api/products/{a.pk}/devices/{a.lamp}/credentials",
    ]
    with client(server, a.tokens["admin"]) as admin:
        return {path: still(admin.get(path).json()) for path in paths}


def test_tenant_b_reaches_nothing_of_tenant_a(server: Any, north: Town, south: Town) -> None:
    before = snapshot(server, north)
    crossed = []
    with client(server, south.tokens["admin"]) as mallory:
        for method, path in operations(server):
            if (method, path) in OPEN | OWN:
                continue
            body = BODIES.get((method, path))
            query = QUERIES.get((method, path))
            answer = mallory.request(
                method,
                filled(path, north),
                json=body(north) if body is not None else None,
                params=query(north) if query is not None else None,
            )
            if SYSTEM_ONLY.match(path):
                wanted = {403}
            elif "{" in path or (method, path) in QUERIES:
                wanted = {404} if method == "GET" or "{" in path else {400, 404}
            elif method == "GET":
                wanted = {200}  # (a list: what it holds is checked in test_lists)
            else:
                wanted = {400, 403, 404}
            if answer.status_code not in wanted:
                crossed.append(f"{method} {path}: {answer.status_code} {answer.text[:160]}")
    assert not crossed, "\n".join(crossed)
    assert snapshot(server, north) == before


@pytest.mark.parametrize("credentials", [None, "Bearer not-a-token", "Bearer hsk_nokey.x"])
def test_every_guarded_operation_refuses_a_missing_or_wrong_token(
    server: Any, north: Town, credentials: str | None
) -> None:
    headers = {} if credentials is None else {"Authorization": credentials}
    let_in = []
    with httpx.Client(base_url=base_url(server), headers=headers) as stranger:
        for method, path in operations(server):
            if (method, path) in OPEN or path.endswith("/trigger"):
                continue  # (a scene's trigger checks its own token: test_scenes_trigger)
            body = BODIES.get((method, path))
            answer = stranger.request(
                method, filled(path, north), json=body(north) if body else None
            )
            if answer.status_code != 401:
                let_in.append(f"{method} {path}: {answer.status_code}")
    assert not let_in, "\n".join(let_in)
