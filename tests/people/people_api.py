"""Helpers of the people tests: a server with a known first admin, clients that log in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

ADMIN_PASSWORD = "correct horse battery"


def base_url(server: Any) -> str:
    return f"http://127.0.0.1:{server.ports['http']}"


def token_client(server: Any) -> httpx.Client:
    """A client with the admin token (``SYSTEM``)."""
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    return httpx.Client(base_url=base_url(server), headers={"Authorization": f"Bearer {token}"})


def log_in(server: Any, name: str, password: str) -> dict[str, Any]:
    response = httpx.post(
        base_url(server) + "/api/auth/login", json={"username": name, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer_client(server: Any, name: str, password: str) -> httpx.Client:
    tokens = log_in(server, name, password)
    return httpx.Client(
        base_url=base_url(server),
        headers={"Authorization": f"Bearer {tokens['accessToken']}"},
    )


def add_user(server: Any, name: str, role: str, password: str = "a long password 1") -> None:
    with token_client(server) as api:
        made = api.post("/api/users", json={"name": name, "password": password, "role": role})
        assert made.status_code == 201, made.text
