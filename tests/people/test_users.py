"""``/api/users`` over real HTTP: made, listed, changed and deleted by an admin of the
tenant; problems for a weak password, a name taken, no such user; the first admin."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from people_api import ADMIN_PASSWORD, add_user, base_url, bearer_client, log_in, token_client

PASSWORD = "a long password 1"


@pytest.fixture
def server(make_server: Any) -> Any:
    return make_server(admin_password=ADMIN_PASSWORD)


def test_users_are_made_shown_changed_and_deleted(server: Any) -> None:
    with token_client(server) as api:
        made = api.post(
            "/api/users",
            json={"name": "ana", "password": PASSWORD, "role": "operator", "groups": ["north"]},
        )
        assert made.status_code == 201, made.text
        ana = made.json()
        assert (ana["role"], ana["tenant"], ana["groups"]) == ("operator", "default", ["north"])
        assert "password" not in str(ana).lower().replace("passwordchangedat", "")
        assert [u["name"] for u in api.get("/api/users").json()["items"]] == ["admin", "ana"]
        taken = api.post("/api/users", json={"name": "ana", "password": PASSWORD})
        assert taken.status_code == 409 and "ana" in taken.json()["detail"]
        weak = api.post("/api/users", json={"name": "bo", "password": "short"})
        assert weak.status_code == 400 and "10 characters" in weak.json()["detail"]
        no_tenant = api.post("/api/users", json={"name": "bo", "password": PASSWORD, "tenant": "x"})
        assert no_tenant.status_code == 400 and "tenant" in no_tenant.json()["detail"]
        assert api.get("/api/users/nobody").status_code == 404
        lifted = api.patch("/api/users/ana", json={"groups": None}).json()
        assert lifted["groups"] is None and lifted["role"] == "operator"
        assert (
            api.put("/api/users/ana/password", json={"password": "ana's new one!"}).status_code
            == 200
        )
        assert log_in(server, "ana", "ana's new one!")["user"]["groups"] is None
        assert api.delete("/api/users/ana").status_code == 204
        assert api.get("/api/users/ana").status_code == 404
    gone = httpx.post(
        base_url(server) + "/api/auth/login", json={"username": "ana", "password": "ana's new one!"}
    )
    assert gone.status_code == 401


def test_the_last_enabled_admin_is_not_demoted_disabled_or_deleted(server: Any) -> None:
    add_user(server, "ana", "operator")
    with bearer_client(server, "admin", ADMIN_PASSWORD) as admin:
        for change, how in (
            (lambda: admin.patch("/api/users/admin", json={"role": "operator"}), "demoted"),
            (lambda: admin.patch("/api/users/admin", json={"disabled": True}), "disabled"),
            (lambda: admin.delete("/api/users/admin"), "deleted"),
        ):
            refused = change()
            assert refused.status_code == 409, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            detail = refused.json()["detail"]
            assert "last enabled admin of tenant default" in detail and how in detail
        assert admin.get("/api/users/admin").json()["role"] == "admin"
        # a second admin disabled does not count: admin is still the last enabled one
        assert admin.patch("/api/users/ana", json={"role": "admin", "disabled": True}).is_success
        assert admin.patch("/api/users/admin", json={"role": "viewer"}).status_code == 409
        # once ana is an enabled admin, either may step down, but not both
        assert admin.patch("/api/users/ana", json={"disabled": False}).is_success
        assert admin.patch("/api/users/admin", json={"role": "viewer"}).status_code == 200
    with token_client(server) as system:
        assert system.delete("/api/users/ana").status_code == 409  # (the admin token alike)
        assert system.delete("/api/users/admin").status_code == 204
        # the tenant's only user, its last admin, may go: nobody is locked out
        assert system.delete("/api/users/ana").status_code == 204
        # admins are counted per tenant: another tenant's do not keep hill's
        assert system.post("/api/tenants", json={"id": "hill", "name": "Hill"}).is_success
        add_user(server, "admin2", "admin")
        for name, role in (("hill-admin", "admin"), ("hill-viewer", "viewer")):
            body = {"name": name, "password": PASSWORD, "role": role, "tenant": "hill"}
            assert system.post("/api/users", json=body).status_code == 201
        refused = system.patch("/api/users/hill-admin", json={"role": "operator"})
        assert refused.status_code == 409 and "tenant hill" in refused.json()["detail"]


def test_an_admin_sees_the_users_of_their_own_tenant_only(server: Any) -> None:
    registry = Path(server.settings.data_dir) / "registry.db"
    with sqlite3.connect(registry) as db:  # (tenants have no API yet)
        db.execute("INSERT INTO tenants (id, name, created_at) VALUES ('north', 'North', 0)")
    with token_client(server) as api:
        made = api.post(
            "/api/users",
            json={"name": "nora", "password": PASSWORD, "role": "admin", "tenant": "north"},
        )
        assert made.status_code == 201, made.text
    with bearer_client(server, "nora", PASSWORD) as nora:
        assert [u["name"] for u in nora.get("/api/users").json()["items"]] == ["nora"]
        assert nora.get("/api/users/admin").status_code == 404
        assert nora.delete("/api/users/admin").status_code == 404
        assert nora.put("/api/users/admin/password", json={"password": PASSWORD}).status_code == 404
        elsewhere = nora.post(
            "/api/users", json={"name": "dan", "password": PASSWORD, "tenant": "default"}
        )
        assert elsewhere.status_code == 403
        own = nora.post("/api/users", json={"name": "ned", "password": PASSWORD})
        assert own.json()["tenant"] == "north"


def test_a_user_changes_only_their_own_password(server: Any) -> None:
    add_user(server, "vera", "viewer", PASSWORD)
    add_user(server, "olga", "operator", PASSWORD)
    with bearer_client(server, "vera", PASSWORD) as vera:
        other = vera.put("/api/users/olga/password", json={"password": "vera's choice!"})
        assert other.status_code == 403
        wrong = vera.put(
            "/api/users/vera/password", json={"password": "vera's new one", "oldPassword": "guess"}
        )
        assert wrong.status_code == 400


def test_a_generated_first_password_is_said_once(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hongshan"):
        first = make_server(admin_password_hash=None)  # (not the test servers' hash)
    said = [r.getMessage() for r in caplog.records if "FIRST START" in r.getMessage()]
    assert len(said) == 1 and "hongshan user passwd admin" in said[0]
    match = re.search(r"with the password (\S+) ", said[0])
    assert match is not None
    assert log_in(first, "admin", match.group(1))["user"]["role"] == "admin"
    first.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hongshan"):
        make_server()
    assert not [r for r in caplog.records if "FIRST START" in r.getMessage()]
