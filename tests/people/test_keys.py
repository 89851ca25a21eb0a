"""Integrations' API keys over real HTTP against a running server: shown once, stored hashed,
working as a bearer and as ``X-API-Key`` with their role, refused once revoked or expired
(saying which), never more than their maker, and a tenant's own."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hongshan.identity.api_keys import StoredKey, issue, split
from hongshan.identity.principals import Role

DAY = 86_400_000


@pytest.fixture
def base(server: Any) -> str:
    return f"http://127.0.0.1:{server.ports['http']}"


def made(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/keys", json=body)
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


def refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] != "Error"  # (each status has its own: 403 Forbidden)
    detail: str = response.json()["detail"]
    return detail


def as_key(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})


def test_a_key_is_shown_once_and_stored_hashed(server: Any, api: httpx.Client) -> None:
    key = made(api, name="billing", role="viewer")
    text = key["key"]
    assert text.startswith("hsk_") and key["role"] == "viewer" and key["createdBy"] == "admin-token"
    assert key["tenant"] == "default" and key["expiresAt"] is None and key["groups"] is None
    listed = api.get("/api/keys").json()["items"]
    assert [k["name"] for k in listed] == ["billing"]
    shown = api.get(f"/api/keys/{key['id']}").json()
    for view in (*listed, shown):
        assert "key" not in view and text not in str(view) and "secretHash" not in view
    lookup, secret = text[4:16], text[17:]
    with sqlite3.connect(Path(server.settings.data_dir) / "registry.db") as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
        stored = db.execute("SELECT lookup, secret_hash FROM api_keys").fetchall()
    assert stored == [(lookup, hashlib.sha256(secret.encode()).hexdigest())]
    assert not any(secret in str(cell) for cell in rows[0])


def test_a_key_works_as_bearer_and_as_x_api_key_with_its_role(api: httpx.Client, base: str) -> None:
    viewer = made(api, name="dashboard", role="viewer")["key"]
    admin = made(api, name="provisioning", role="admin")["key"]
    with as_key(base, viewer) as client:
        assert client.get("/api/products").status_code == 200
        detail = refused(client.post("/api/products", json={"name": "Lamp"}), 403)
        assert "admin" in detail and "dashboard is viewer" in detail
    answered = httpx.get(base + "/api/products", headers={"X-API-Key": viewer})
    assert answered.status_code == 200
    refused(httpx.post(base + "/api/products", headers={"X-API-Key": viewer}, json={}), 403)
    with as_key(base, admin) as client:
        assert client.post("/api/products", json={"name": "Lamp"}).status_code == 201
    wrong = viewer[:-4] + ("AAAA" if not viewer.endswith("AAAA") else "BBBB")
    refused(httpx.get(base + "/api/products", headers={"X-API-Key": wrong}), 401)
    refused(httpx.get(base + "/api/products", headers={"X-API-Key": "hsk_short"}), 401)


def test_revoked_and_expired_keys_are_refused_saying_which(
    server: Any, api: httpx.Client, base: str
) -> None:
    key = made(api, name="old-importer", role="operator")
    with as_key(base, key["key"]) as client:
        assert client.get("/api/products").status_code == 200
        revoked = api.delete(f"/api/keys/{key['id']}")
        assert revoked.status_code == 200 and revoked.json()["revokedAt"] is not None
        assert "revoked" in refused(client.get("/api/products"), 401)
    again = api.delete(f"/api/keys/{key['id']}").json()  # (kept, first time kept)
    assert again["revokedAt"] == revoked.json()["revokedAt"]
    assert api.get(f"/api/keys/{key['id']}").json()["revokedAt"] is not None
    # a key that has expired since it was made (kept yesterday, for a day)
    issued = issue()
    now = int(time.time() * 1000)
    expired = StoredKey(
        id=0, tenant="default", name="trial", lookup=issued.lookup,
        secret_hash=issued.secret_hash, role=Role.VIEWER, groups=None,
        created_by="admin-token", created_at=now - DAY, expires_at=now - 1,
    )  # fmt: skip
    server.run(server.platform.registry.api_keys.add(expired))
    server.run(server.platform.api_keys.load())
    with as_key(base, issued.text) as client:
        assert "expired" in refused(client.get("/api/products"), 401)
    lasting = made(api, name="pilot", role="viewer", expiresInDays=2)
    assert lasting["expiresAt"] - lasting["createdAt"] == 2 * DAY
    with as_key(base, lasting["key"]) as client:
        assert client.get("/api/products").status_code == 200
    refused(api.post("/api/keys", json={"name": "x", "role": "viewer", "expiresAt": now}), 400)
    both = {"name": "x", "role": "viewer", "expiresAt": now + DAY, "expiresInDays": 1}
    refused(api.post("/api/keys", json=both), 400)


def test_a_key_is_never_more_than_its_maker(api: httpx.Client, base: str) -> None:
    refused(api.post("/api/keys", json={"name": "x", "role": "root"}), 400)
    operator = made(api, name="ops", role="operator")["key"]
    with as_key(base, operator) as client:
        refused(client.post("/api/keys", json={"name": "mine", "role": "viewer"}), 403)
        refused(client.get("/api/keys"), 403)
    north = made(api, name="north-admin", role="admin", groups=["north"])["key"]
    with as_key(base, north) as client:
        inherited = made(client, name="north-viewer", role="viewer")
        assert inherited["groups"] == ["north"] and inherited["createdBy"] == "north-admin"
        detail = refused(client.post("/api/keys", json={"name": "s", "role": "viewer",
                                                        "groups": ["south"]}), 403)  # fmt: skip
        assert "south" in detail
        refused(client.post("/api/keys", json={"name": "t", "role": "viewer",
                                               "tenant": "elsewhere"}), 403)  # fmt: skip


def test_an_admin_sees_the_keys_of_their_tenant_only(
    server: Any, api: httpx.Client, base: str
) -> None:
    with sqlite3.connect(Path(server.settings.data_dir) / "registry.db") as db:
        db.execute("INSERT INTO tenants (id, name, created_at) VALUES ('hill', 'Hill', 0)")
    theirs = made(api, name="hill-admin", role="admin", tenant="hill")
    assert theirs["tenant"] == "hill"
    refused(api.post("/api/keys", json={"name": "x", "role": "viewer", "tenant": "nowhere"}), 400)
    ours = made(api, name="town-admin", role="admin")["key"]
    with as_key(base, ours) as client:
        assert "hill-admin" not in [k["name"] for k in client.get("/api/keys").json()["items"]]
        refused(client.get(f"/api/keys/{theirs['id']}"), 404)
        refused(client.delete(f"/api/keys/{theirs['id']}"), 404)
    assert {k["name"] for k in api.get("/api/keys").json()["items"]} == {"hill-admin", "town-admin"}
    refused(api.get("/api/keys/999999999999"), 404)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("hsk_ab_defghijkl_secret_with_underscores", ("ab_defghijkl", "secret_with_underscores")),
        ("hsk_abcdefghijkl_s", ("abcdefghijkl", "s")),
        ("hsk_abcdefghijkl_", None),  # (no secret)
        ("hsk_abcdefghijk_secret", None),  # (a lookup one short: no "_" where it ends)
        ("hsk_short", None),
        ("Hsk_abcdefghijkl_secret", None),
        ("", None),
    ],
)
def test_a_key_is_cut_by_position_not_by_its_underscores(
    text: str, parts: tuple[str, str] | None
) -> None:
    assert split(text) == parts


def test_an_issued_key_splits_back_into_what_is_kept() -> None:
    for _ in range(200):  # (lookups and secrets hold "_" and "-" often enough)
        issued = issue()
        found = split(issued.text)
        assert found is not None and found[0] == issued.lookup
        assert hashlib.sha256(found[1].encode()).hexdigest() == issued.secret_hash
