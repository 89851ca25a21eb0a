"""``hongshan key …`` and ``hongshan audit`` as a user runs them: the installed command against
a running server, with the admin token read from the data directory."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from test_api_commands import as_json, run


def test_keys_from_the_command_line(server: Any) -> None:
    made = run(server, "key", "create", "billing", "--role", "operator", "--group", "north_side",
               "--expires-in-days", "30")  # fmt: skip
    text = made.stdout.strip()
    assert text.startswith("hsk_") and "not shown again" in made.stderr
    base = f"http://127.0.0.1:{server.ports['http']}"
    assert httpx.get(base + "/api/products", headers={"X-API-Key": text}).status_code == 200
    [listed] = as_json(server, "key", "list")
    assert listed["name"] == "billing" and listed["role"] == "operator"
    assert listed["groups"] == ["north_side"] and listed["expiresAt"] is not None
    table = run(server, "key", "list").stdout
    assert "billing" in table and text not in table
    assert "revoked" in run(server, "key", "revoke", str(listed["id"])).stdout
    assert httpx.get(base + "/api/products", headers={"X-API-Key": text}).status_code == 401
    missing = run(server, "key", "revoke", "999", check=False)
    assert missing.returncode == 1 and "404" in missing.stderr
    wrong = run(server, "key", "create", "x", "--role", "root", check=False)
    assert wrong.returncode == 2


def test_the_audit_log_from_the_command_line(server: Any) -> None:
    # (``run`` puts the API options after two words: one-word ``audit`` joins its option's
    # value to it)
    made = as_json(server, "key", "create", "=sum(A1)", "--role", "viewer")
    base = f"http://127.0.0.1:{server.ports['http']}"
    assert httpx.post(base + "/api/groups", json={}).status_code == 401
    assert run(server, "audit").stdout.endswith("2 of 2\n")  # (a table as wide as the tty)
    actions = [r["action"] for r in as_json(server, "audit")["items"]]
    assert actions == ["POST /api/groups", "POST /api/keys"]
    page = as_json(server, "audit", "--status=201")
    assert [r["detail"]["keyId"] for r in page["items"]] == [made["id"]]
    exported = run(server, "audit", "--csv", "--since", str(page["items"][0]["at"])).stdout
    header, *rows = list(csv.reader(io.StringIO(exported)))
    assert header[0] == "id" and len(rows) == 2
    assert {row[header.index("actor")] for row in rows} == {"admin-token", "anonymous"}
    assert as_json(server, "audit", "--actor=nobody")["items"] == []
