"""Names within a tenant (migration 0015): both towns make a group, a rule, a scene and a
notification route of the same names; each sees, changes and deletes its own alone, a user
limited to its ``ward`` sees its own town's ward, a command to ``ward`` reaches its town's
members, a live subscription to ``ward`` hears its town's; a name is still one town's once
(409); the admin token names the tenant where both have one."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_isolation import live, messages
from towns import PASSWORD, Town, admin_token, base_url, client, created, log_in, post_value, scene

from broker_peers import eventually
from installed import HONGSHAN
from webhook_receiver import WebhookReceiver

WARD = "ward"
NAMED = ("rule", "scene", "route")


def _rule() -> dict[str, Any]:
    return {"name": "lamps", "sql": 'SELECT * FROM "/sys/#"', "actions": []}


def _scene(town: Town) -> dict[str, Any]:
    return {**scene(town), "name": "dusk"}


def _route() -> dict[str, Any]:
    return {"name": "duty", "kind": "webhook", "url": "http://127.0.0.1:9/"}


PATHS = {"rule": "/api/rules", "scene": "/api/scenes", "route": "/api/alarm-notifications"}


def _bodies(town: Town) -> dict[str, dict[str, Any]]:
    return {"rule": _rule(), "scene": _scene(town), "route": _route()}


@pytest.fixture(scope="module")
def wards(towns: tuple[Town, Town], town_server: Any) -> Iterator[tuple[Town, Town]]:
    """In each town: a group ``ward`` holding its second lamp, a user limited to it, and a
    rule ``lamps``, a scene ``dusk`` and a route ``duty`` (their ids in ``ids``)."""
    for town in towns:
        with client(town_server, town.tokens["admin"]) as admin:
            created(admin.post("/api/groups", json={"name": WARD}))
            member = {"productKey": town.pk, "deviceName": town.lamps[1]}
            created(admin.post(f"/api/groups/{WARD}/devices", json={"devices": [member]}))
            user = {"name": f"{town.tenant}-ward", "password": PASSWORD, "role": "operator"}
            created(admin.post("/api/users", json={**user, "groups": [WARD]}))
            for kind, body in _bodies(town).items():
                town.ids[f"named-{kind}"] = created(admin.post(PATHS[kind], json=body))["id"]
        town.tokens["ward"] = log_in(town_server, f"{town.tenant}-ward")
    yield towns


def test_each_town_has_its_own_ward(server: Any, wards: tuple[Town, Town]) -> None:
    for town in wards:
        with client(server, town.tokens["admin"]) as admin:
            names = [g["name"] for g in admin.get("/api/groups").json()["items"]]
            assert names.count(WARD) == 1
            shown = admin.get(f"/api/groups/{WARD}").json()
            assert shown["tenant"] == town.tenant and shown["size"] == 1
            devices = admin.get("/api/devices", params={"group": WARD}).json()["items"]
            assert [(d["productKey"], d["deviceName"]) for d in devices] == [
                (town.pk, town.lamps[1])
            ]
            mapped = admin.get("/api/map/devices", params={"group": WARD}).json()["devices"]
            assert [row[:2] for row in mapped] == [[town.pk, town.lamps[1]]]


def test_a_name_is_still_one_towns_once(server: Any, wards: tuple[Town, Town]) -> None:
    north, _ = wards
    with client(server, north.tokens["admin"]) as admin:
        again = admin.post("/api/groups", json={"name": WARD})
        assert again.status_code == 409, again.text
        for kind, body in _bodies(north).items():
            answer = admin.post(PATHS[kind], json=body)
            assert answer.status_code == 409, (kind, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_change_of_one_towns_ward_leaves_the_others(
    server: Any, wards: tuple[Town, Town]
) -> None:
    north, south = wards
    with client(server, north.tokens["admin"]) as a, client(server, south.tokens["admin"]) as b:
        changed = a.patch(f"/api/groups/{WARD}", json={"tags": {"maxLux": "10"}})
        assert changed.status_code == 200, changed.text
        assert b.get(f"/api/groups/{WARD}").json()["tags"] == {}
        first = {"productKey": north.pk, "deviceName": north.lamp}
        added = a.post(f"/api/groups/{WARD}/devices", json={"devices": [first]})
        assert added.json()["size"] == 2
        assert b.get(f"/api/groups/{WARD}").json()["size"] == 1
        removed = a.post(f"/api/groups/{WARD}/devices/remove", json={"devices": [first]})
        assert removed.json()["size"] == 1
        # a town's device is no member of the other town's ward (its own is not there)
        theirs = {"productKey": south.pk, "deviceName": south.lamp}
        refused = a.post(f"/api/groups/{WARD}/devices", json={"devices": [theirs]})
        assert refused.status_code == 404, refused.text


def test_rules_scenes_and_routes_of_one_name_are_each_towns(
    server: Any, wards: tuple[Town, Town]
) -> None:
    for town in wards:
        with client(server, town.tokens["admin"]) as admin:
            for kind in NAMED:
                items = admin.get(PATHS[kind]).json()["items"]
                mine = [i for i in items if i["name"] == _bodies(town)[kind]["name"]]
                assert [i["id"] for i in mine] == [town.ids[f"named-{kind}"]], kind
            changed = admin.put(
                f"/api/rules/{town.ids['named-rule']}",
                json={**_rule(), "sql": 'SELECT * FROM "/sys/+/+/thing/#"'},
            )
            assert changed.status_code == 200, changed.text


def test_a_ward_user_sees_its_own_towns_ward(server: Any, wards: tuple[Town, Town]) -> None:
    for town in wards:
        with client(server, town.tokens["ward"]) as ward:
            devices = ward.get("/api/devices").json()["items"]
            assert [(d["productKey"], d["deviceName"]) for d in devices] == [
                (town.pk, town.lamps[1])
            ]
            groups = ward.get("/api/groups").json()["items"]
            assert [(g["name"], g["tenant"]) for g in groups] == [(WARD, town.tenant)]


def test_a_command_to_the_ward_reaches_its_towns_members(
    server: Any, wards: tuple[Town, Town]
) -> None:
    for town in wards:
        for who in ("operator", "ward"):
            with client(server, town.tokens[who]) as sender:
                asked = {"target": {"group": WARD}, "set": {"Brightness": 8}, "ttl": 60}
                batch = sender.post("/api/commands", json=asked)
                assert batch.status_code == 202, batch.text
                assert batch.json()["total"] == 1
                records = sender.get("/api/commands", params={"batch": batch.json()["id"]}).json()[
                    "items"
                ]
                assert [(r["productKey"], r["deviceName"]) for r in records] == [
                    (town.pk, town.lamps[1])
                ]


def test_a_live_subscription_to_the_ward_hears_its_towns(
    server: Any, wards: tuple[Town, Town]
) -> None:
    north, south = wards
    with live(server, north.tokens["admin"]) as socket:
        heard = messages(socket)
        ask = {"op": "subscribe", "id": "w", "topic": "properties", "group": WARD}
        socket.send(json.dumps(ask))
        assert next(heard)["type"] == "subscribed"
        post_value(server, south, south.lamps[1], 51).stop()  # (B's ward: not heard)
        post_value(server, north, north.lamps[1], 52).stop()
        got = next(heard)
        assert got["device"] == f"{north.pk}/{north.lamps[1]}", got
    with live(server, admin_token(server)) as socket:
        heard = messages(socket)
        ask = {"op": "subscribe", "id": "w", "topic": "properties", "group": WARD}
        socket.send(json.dumps(ask))
        refused = next(heard)
        assert refused["type"] == "error" and "tenant" in refused["detail"], refused
        socket.send(json.dumps({**ask, "tenant": south.tenant}))
        assert next(heard)["type"] == "subscribed"
        post_value(server, north, north.lamps[1], 53).stop()
        post_value(server, south, south.lamps[1], 54).stop()
        got = next(heard)
        assert got["device"] == f"{south.pk}/{south.lamps[1]}", got


def test_a_rule_hands_its_output_to_its_own_towns_rule_of_the_name(
    server: Any, wards: tuple[Town, Town]
) -> None:
    """Both towns have a rule ``next``; a rule of each hands on to ``next``: its own town's
    runs (the later made does not stand for the other's)."""
    receivers = {town.tenant: WebhookReceiver() for town in wards}
    try:
        for town in wards:
            with client(server, town.tokens["operator"]) as operator:
                hook = {"type": "webhook", "url": receivers[town.tenant].url}
                body = {"name": "next", "sql": 'SELECT * FROM "town/never"', "actions": [hook]}
                created(operator.post("/api/rules", json=body))
                heard = f'SELECT values.Brightness AS b FROM "$things/{town.pk}/+/properties"'
                forward = [{"type": "rule", "rule": "next"}]
                created(
                    operator.post(
                        "/api/rules", json={"name": "first", "sql": heard, "actions": forward}
                    )
                )
        for number, town in enumerate(wards):
            post_value(server, town, town.lamps[1], 61 + number).stop()
            _, body = receivers[town.tenant].get()
            assert json.loads(body) == {"b": 61 + number}
    finally:
        for receiver in receivers.values():
            receiver.close()


def test_a_scene_reads_its_own_towns_ward(server: Any, wards: tuple[Town, Town]) -> None:
    """Each town's scene with a condition on ``ward``'s members (their count) runs on its
    town's ward (the other's, or none, would leave it unheld); a group only the other town
    has is none for a scene (400)."""
    north, _ = wards
    with client(server, north.tokens["admin"]) as a:
        created(a.post("/api/groups", json={"name": "north_only"}))
    for town in wards:
        count = {"type": "groupAggregate", "group": WARD, "property": "Brightness"}
        body = {
            **scene(town),
            "name": "ward-count",
            "triggers": [{"type": "webhook"}],
            "conditions": {"all": [{**count, "fn": "count", "op": ">=", "value": 1}]},
        }
        with client(server, town.tokens["operator"]) as operator:
            made = created(operator.post("/api/scenes", json=body))
            alone = {
                "all": [{**count, "group": "north_only", "fn": "count", "op": ">=", "value": 0}]
            }
            other = operator.post("/api/scenes", json={**body, "name": "x", "conditions": alone})
            assert other.status_code == (201 if town is north else 400), other.text
            trace = f"/api/scenes/{made['id']}/trace"
            assert operator.post(f"/api/scenes/{made['id']}/trigger").status_code == 202
            eventually(lambda: bool(operator.get(trace).json()["runs"]))  # noqa: B023
            assert operator.get(trace).json()["nonRuns"] == []


def _cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``hongshan`` as the admin token (the data directory's)."""
    where = ["--server", base_url(server), "--data-dir", server.settings.data_dir]
    command = [HONGSHAN, *args[:2], *where, *args[2:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_admin_token_names_the_tenant(server: Any, wards: tuple[Town, Town]) -> None:
    _, south = wards
    with client(server, admin_token(server)) as system:
        ambiguous = system.get(f"/api/groups/{WARD}")
        assert ambiguous.status_code == 409, ambiguous.text
        assert "north, south" in ambiguous.json()["detail"]
        shown = system.get(f"/api/groups/{WARD}", params={"tenant": south.tenant})
        assert shown.status_code == 200 and shown.json()["tenant"] == south.tenant
        listed = system.get("/api/devices", params={"group": WARD}).status_code
        assert listed == 409
        devices = system.get("/api/devices", params={"group": WARD, "tenant": south.tenant})
        assert [d["productKey"] for d in devices.json()["items"]] == [south.pk]
        latest = system.get("/api/history/latest", params={"group": WARD})
        assert latest.status_code == 409, latest.text
        latest = system.get("/api/history/latest", params={"group": WARD, "tenant": south.tenant})
        assert {row["productKey"] for row in latest.json()} == {south.pk}
        batch = system.post(
            "/api/commands", json={"target": {"group": WARD}, "set": {"Brightness": 9}}
        )
        assert batch.status_code == 409, batch.text
        made = system.post("/api/groups", json={"name": WARD, "tenant": "default"})
        assert made.status_code == 201, made.text
        assert system.get(f"/api/groups/{WARD}", params={"tenant": "default"}).json()["size"] == 0
    # the CLI names the tenant too
    ambiguous_cli = _cli(server, "group", "delete", WARD)
    assert ambiguous_cli.returncode != 0 and "north, south" in ambiguous_cli.stderr
    done = _cli(server, "group", "delete", WARD, "--tenant", "default")
    assert done.returncode == 0 and done.stdout.strip() == f"group {WARD} deleted", done.stderr
    listed = _cli(server, "device", "list", "--group", WARD, "--tenant", south.tenant, "--json")
    assert listed.returncode == 0, listed.stderr
    assert {d["productKey"] for d in json.loads(listed.stdout)["items"]} == {south.pk}


def test_the_admin_tokens_rule_import_writes_to_the_default_tenant(
    server: Any, wards: tuple[Town, Town], tmp_path: Path
) -> None:
    """Both towns have a rule ``lamps``: the admin token's import of a ``lamps`` creates the
    default tenant's, and changes neither town's."""
    north, _ = wards
    file = tmp_path / "lamps.yaml"
    file.write_text('- name: lamps\n  sql: SELECT a FROM "town/in"\n')
    done = _cli(server, "rule", "import", "-f", str(file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["create  lamps"]
    with client(server, north.tokens["admin"]) as a:
        kept = a.get(f"/api/rules/{north.ids['named-rule']}").json()
        assert kept["tenant"] == north.tenant and "town/in" not in kept["sql"]


def test_deleting_one_towns_ward_leaves_the_others(server: Any, wards: tuple[Town, Town]) -> None:
    north, south = wards
    with client(server, north.tokens["admin"]) as a, client(server, south.tokens["admin"]) as b:
        for kind in NAMED:
            gone = a.delete(f"{PATHS[kind]}/{north.ids[f'named-{kind}']}")
            assert gone.status_code == 204, (kind, gone.text)
            assert b.get(f"{PATHS[kind]}/{south.ids[f'named-{kind}']}").status_code == 200
        assert a.delete(f"/api/groups/{WARD}").status_code == 204
        assert a.get(f"/api/groups/{WARD}").status_code == 404
        assert b.get(f"/api/groups/{WARD}").json()["size"] == 1
        with client(server, north.tokens["ward"]) as ward:
            assert ward.get("/api/devices").json()["items"] == []
