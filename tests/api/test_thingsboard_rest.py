"""The REST API's ThingsBoard groundwork over real HTTP: a product's protocol and schemaless
flag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_rest import problem


@pytest.fixture
def api(server: Any) -> Iterator[httpx.Client]:
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_a_product_speaks_a_protocol_and_may_be_schemaless(api: httpx.Client) -> None:
    plain = api.post("/api/products", json={"name": "Streetlight"}).json()
    assert (plain["protocol"], plain["schemaless"]) == ("alink", False)
    created = api.post(
        "/api/products", json={"name": "Air_station", "protocol": "thingsboard", "schemaless": True}
    )
    assert created.status_code == 201, created.text
    pk = created.json()["productKey"]
    shown = api.get(f"/api/products/{pk}").json()
    assert (shown["protocol"], shown["schemaless"]) == ("thingsboard", True)
    assert (
        api.patch(f"/api/products/{pk}", json={"schemaless": False}).json()["schemaless"] is False
    )
    problem(api.post("/api/products", json={"name": "Gadget", "protocol": "lwm2m"}), 400)
    problem(api.patch(f"/api/products/{pk}", json={"protocol": "alink"}), 400)  # for good
