"""``/api/tenants``: the admin token's alone; a tenant is made, shown, listed, and deleted
only once it holds nothing; what a tenant's admin makes lands in its tenant."""

from __future__ import annotations

from typing import Any

from towns import Town, admin_token, client


def test_only_the_admin_token_manages_tenants(server: Any, north: Town) -> None:
    with client(server, north.tokens["admin"]) as admin:
        for method, path in (
            ("GET", "/api/tenants"),
            ("POST", "/api/tenants"),
            ("GET", "/api/tenants/north"),
            ("DELETE", "/api/tenants/north"),
        ):
            body = {"id": "east", "name": "East"} if method == "POST" else None
            refused = admin.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "admin token" in refused.json()["detail"]


def test_a_tenant_is_deleted_only_once_it_holds_nothing(server: Any, north: Town) -> None:
    with client(server, admin_token(server)) as system:
        made = system.post("/api/tenants", json={"id": "east", "name": "East"})
        assert made.status_code == 201, made.text
        assert system.post("/api/tenants", json={"id": "east", "name": "x"}).status_code == 409
        bad = system.post("/api/tenants", json={"id": "East Side", "name": "x"})
        assert bad.status_code == 400
        assert system.get("/api/tenants/east").json()["name"] == "East"
        listed = system.get("/api/tenants").json()
        assert {"default", "north", "south", "east"} <= {t["id"] for t in listed["items"]}
        held = system.delete("/api/tenants/north")
        assert held.status_code == 409 and "still has" in held.json()["detail"]
        group = system.post("/api/groups", json={"name": "east_side", "tenant": "east"})
        assert group.status_code == 201 and group.json()["tenant"] == "east"
        assert system.delete("/api/tenants/east").status_code == 409
        assert system.delete("/api/groups/east_side").status_code == 204
        assert system.delete("/api/tenants/east").status_code == 204
        assert system.get("/api/tenants/east").status_code == 404
        unknown = system.post("/api/products", json={"name": "Pump", "tenant": "nowhere"})
        assert unknown.status_code == 400 and "no tenant" in unknown.json()["detail"]


def test_what_a_tenant_admin_makes_is_its_tenant(server: Any, north: Town) -> None:
    with client(server, north.tokens["admin"]) as admin:
        product = admin.get(f"/api/products/{north.pk}").json()
        assert product["tenant"] == "north"
        group = admin.get(f"/api/groups/{north.group}").json()
        assert group["tenant"] == "north"
        elsewhere = admin.post("/api/products", json={"name": "Pump", "tenant": "south"})
        assert elsewhere.status_code == 400 and "north" in elsewhere.json()["detail"]
