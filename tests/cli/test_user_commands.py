"""``hongshan user …`` as a user runs it: the installed command against a running server,
with the admin token read from the data directory."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest
from test_api_commands import as_json, run

from installed import HONGSHAN


@pytest.fixture
def server(make_server: Any) -> Any:
    return make_server(admin_password="the first admin's")


def with_password(server: Any, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    command = [
        HONGSHAN, *args[:2], "--server", f"http://127.0.0.1:{server.ports['http']}",
        "--data-dir", server.settings.data_dir, *args[2:], "--password-stdin",
    ]  # fmt: skip
    done = subprocess.run(
        command, input=password + "\n", capture_output=True, text=True, timeout=60
    )
    return done


def logs_in(server: Any, name: str, password: str) -> bool:
    response = httpx.post(
        f"http://127.0.0.1:{server.ports['http']}/api/auth/login",
        json={"username": name, "password": password},
    )
    return response.status_code == 200


def test_users_from_the_command_line(server: Any) -> None:
    added = with_password(
        server, "user", "add", "ana", "--role", "operator", "--group", "north", "--json",
        password="ana's first password",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert logs_in(server, "ana", "ana's first password")
    listed = as_json(server, "user", "list")
    assert [(u["name"], u["role"], u["groups"]) for u in listed] == [
        ("admin", "admin", None),
        ("ana", "operator", ["north"]),
    ]
    assert "ana" in run(server, "user", "list").stdout
    weak = with_password(server, "user", "add", "bo", password="short")
    assert weak.returncode == 1 and "400" in weak.stderr and "10 characters" in weak.stderr
    changed = as_json(server, "user", "change", "ana", "--role", "viewer", "--all-groups")
    assert (changed["role"], changed["groups"]) == ("viewer", None)
    assert as_json(server, "user", "change", "ana", "--disable")["disabled"] is True
    assert not logs_in(server, "ana", "ana's first password")
    as_json(server, "user", "change", "ana", "--enable")
    done = with_password(server, "user", "passwd", "ana", password="ana's second password")
    assert done.returncode == 0, done.stderr
    assert logs_in(server, "ana", "ana's second password")
    run(server, "user", "delete", "ana")
    missing = run(server, "user", "show", "ana", check=False)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_the_last_admin_is_kept_from_the_command_line(server: Any) -> None:
    added = with_password(server, "user", "add", "bo", password="bo's first password")
    assert added.returncode == 0, added.stderr
    for args in (
        ("user", "change", "admin", "--role", "viewer"),
        ("user", "change", "admin", "--disable"),
        ("user", "delete", "admin"),
    ):
        refused = run(server, *args, check=False)
        assert refused.returncode == 1, refused.stdout
        assert "409" in refused.stderr and "last enabled admin" in refused.stderr
    assert logs_in(server, "admin", "the first admin's")
