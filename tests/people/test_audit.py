"""The audit log over real HTTP against a running server: every attempt at a change recorded
with who, what, the status and from where (refused ones too), never a body; read filtered,
as JSON and as CSV a spreadsheet cannot be tricked by; pruned past its retention."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hongshan.services.people.audit import AuditLog
from hongshan.store.registry.audit import AuditEntry

DAY = 86_400_000


@pytest.fixture
def base(server: Any) -> str:
    return f"http://127.0.0.1:{server.ports['http']}"


def records(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answered = api.get("/api/audit", params=params)
    assert answered.status_code == 200, answered.text
    page = answered.json()
    assert page["total"] >= len(page["items"])
    items: list[dict[str, Any]] = page["items"]
    return items


def test_a_device_created_is_recorded_with_who_where_and_how_it_went(
    api: httpx.Client,
) -> None:
    before = int(time.time() * 1000)
    pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
    created = api.post(
        f"/api/products/{pk}/devices",
        json={"deviceName": "lamp-0001"},
        headers={"X-Forwarded-For": "203.0.113.9"},  # (no trusted proxy: not believed)
    )
    assert created.status_code == 201
    api.get("/api/products")  # (a read: not recorded)
    newest, product = records(api)
    assert newest["action"] == "POST /api/products/{pk}/devices"
    assert newest["target"] == f"/api/products/{pk}/devices"
    assert newest["actor"] == "admin-token" and newest["actorKind"] == "token"
    assert newest["status"] == 201 and newest["address"] == "127.0.0.1"
    assert newest["tenant"] is None and newest["at"] >= before
    assert product["action"] == "POST /api/products" and product["status"] == 201


def test_refused_attempts_are_recorded_and_bodies_never(api: httpx.Client, base: str) -> None:
    secret = "correct-horse-battery-staple"
    nobody = httpx.post(base + "/api/products", json={"name": "X", "password": secret})
    assert nobody.status_code == 401
    viewer = api.post("/api/keys", json={"name": "dashboard", "role": "viewer"}).json()
    refused = httpx.post(
        base + "/api/products", json={"name": "Y", "password": secret},
        headers={"X-API-Key": viewer["key"]},
    )  # fmt: skip
    assert refused.status_code == 403
    bad = api.post("/api/products", json={"name": "Z", "password": secret})
    assert bad.status_code == 400
    last, by_key, key_made, anonymous = records(api)[:4]
    assert (last["actor"], last["status"]) == ("admin-token", 400)
    assert (by_key["actor"], by_key["actorKind"], by_key["status"]) == ("dashboard", "key", 403)
    assert by_key["tenant"] == "default"
    assert anonymous["actor"] == anonymous["actorKind"] == "anonymous"
    assert anonymous["status"] == 401 and anonymous["action"] == "POST /api/products"
    assert key_made["detail"] == {"keyId": viewer["id"], "name": "dashboard", "role": "viewer"}
    everything = api.get("/api/audit").text + api.get("/api/audit", params={"format": "csv"}).text
    assert secret not in everything and viewer["key"] not in everything


def test_a_trusted_proxy_names_the_client(make_server: Any) -> None:
    server = make_server(trusted_proxies=["127.0.0.0/8"])
    base = f"http://127.0.0.1:{server.ports['http']}"
    # the client's own claim (left) is not believed: the hop our proxy appended is
    forwarded = {"X-Forwarded-For": "10.9.9.9, 198.51.100.7, 127.0.0.2"}
    assert httpx.post(base + "/api/groups", json={}, headers=forwarded).status_code == 401
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as api:
        [record] = records(api)
    assert record["address"] == "198.51.100.7"


def test_the_log_is_filtered_and_exported_as_csv(api: httpx.Client, base: str) -> None:
    formula = '=HYPERLINK("http://evil.example","x")'
    made = api.post("/api/keys", json={"name": formula, "role": "admin"}).json()
    with httpx.Client(base_url=base, headers={"X-API-Key": made["key"]}) as client:
        assert client.post("/api/groups", json={"name": "north_east"}).status_code == 201
        assert client.delete("/api/groups/nowhere").status_code == 404
    assert [r["status"] for r in records(api, actor=formula)] == [404, 201]
    assert [r["actor"] for r in records(api, status=201, action="POST /api/groups")] == [formula]
    newest = records(api, limit=1)[0]
    assert records(api, since=newest["at"] + 1) == []
    assert len(records(api, until=newest["at"])) == 3 and len(records(api, offset=1)) == 2
    exported = api.get("/api/audit", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    header, *lines = rows
    assert header[:3] == ["id", "at", "time"] and "actor" in header and len(lines) == 3
    by_column = [dict(zip(header, line, strict=True)) for line in lines]
    assert by_column[0]["actor"] == "'" + formula and by_column[0]["status"] == "404"
    assert by_column[2]["actor"] == "admin-token"
    accepted = api.get("/api/audit", params={"actor": formula}, headers={"Accept": "text/csv"})
    assert len(list(csv.reader(io.StringIO(accepted.text)))) == 3
    assert api.get("/api/audit", params={"since": "yesterday"}).status_code == 400


def test_an_admin_of_a_tenant_reads_their_tenant_only(api: httpx.Client, base: str) -> None:
    key = api.post("/api/keys", json={"name": "town-admin", "role": "admin"}).json()["key"]
    with httpx.Client(base_url=base, headers={"X-API-Key": key}) as client:
        client.post("/api/groups", json={"name": "south"})
        seen = records(client)
    assert [(r["actor"], r["tenant"]) for r in seen] == [("town-admin", "default")]
    assert len(records(api)) == 2  # (the admin token's: every record)
    viewer = api.post("/api/keys", json={"name": "v", "role": "viewer"}).json()["key"]
    assert httpx.get(base + "/api/audit", headers={"X-API-Key": viewer}).status_code == 403


def test_records_past_their_retention_are_pruned(server: Any, api: httpx.Client) -> None:
    now = int(time.time() * 1000)
    old = AuditEntry(
        at=now - 400 * DAY, actor="ana", actor_kind="user", address="10.0.0.1",
        action="DELETE /api/groups/{name}", target="/api/groups/old", status=204,
    )  # fmt: skip
    server.run(server.platform.registry.audit.add([old]))
    assert [r["actor"] for r in records(api)] == ["ana"]
    assert server.run(server.platform.audit.prune()) == 1  # (kept 365 days)
    assert records(api) == []


async def test_a_full_queue_loses_records_rather_than_waiting() -> None:
    written: list[AuditEntry] = []

    class Store:
        async def add(self, entries: Any) -> None:
            written.extend(entries)

        async def find(self, where: Any) -> Any:
            return written, len(written)

        async def prune(self, before: int) -> int:
            return 0

    log = AuditLog(Store(), max_queued=2)
    entry = AuditEntry(
        at=1, actor="a", actor_kind="user", address="", action="POST /x", target="/x", status=200
    )
    for _ in range(3):
        log.record(entry)  # (never awaits: the writer is not even running)
    assert log.lost == 1
    log.start()
    await asyncio.wait_for(log.settled(), timeout=5)
    assert len(written) == 2
    await log.stop()
