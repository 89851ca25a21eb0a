"""``hongshan tenant …`` against a running server, with the admin token from the data
directory: add, list, and delete (refused while the tenant holds anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from test_api_commands import as_json, run


def test_tenants_from_the_command_line(server: Any) -> None:
    added = as_json(server, "tenant", "add", "hill", "--name", "Hill Town")
    assert (added["id"], added["name"]) == ("hill", "Hill Town")
    assert [t["id"] for t in as_json(server, "tenant", "list")] == ["default", "hill"]
    pump = as_json(server, "product", "create", "--name", "Well", "--tenant", "hill")
    assert pump["tenant"] == "hill"
    run(server, "product", "delete", pump["productKey"])
    assert as_json(server, "group", "create", "hill_side", "--tenant", "hill")["tenant"] == "hill"
    run(server, "group", "delete", "hill_side")
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{server.ports['http']}",
        headers={"Authorization": f"Bearer {token}"},
    ) as api:
        made = api.post("/api/products", json={"name": "Pump", "tenant": "hill"})
        assert made.status_code == 201 and made.json()["tenant"] == "hill"
        held = run(server, "tenant", "delete", "hill", check=False)
        assert held.returncode != 0 and "still has 1 products" in held.stderr
        api.delete(f"/api/products/{made.json()['productKey']}")
    run(server, "tenant", "delete", "hill")
    assert [t["id"] for t in as_json(server, "tenant", "list")] == ["default"]
