"""``hongshan key …``: integrations' API keys from the command line, as a client of the REST
API (the options of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).

``key create NAME --role viewer|operator|admin [--group G …] [--expires-in-days N]`` (prints
the key: the only time it is shown), ``key list``, ``key revoke ID``.
"""

from __future__ import annotations

from typing import Any

import click

from hongshan.cli_api import Api, api_options, iso_ms

KEY_COLUMNS = ("id", "name", "role", "groups", "expiresAt", "revokedAt", "usedAt", "createdBy")


@click.group()
def key() -> None:
    """API keys of integrations: made, listed, revoked."""


@key.command("create")
@api_options
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), required=True)
@click.option("--group", "groups", multiple=True, help="Limit it to this device group.")
@click.option("--expires-in-days", type=float, help="It stops working after [never].")
@click.option("--tenant", help="Its tenant (the admin token's choice) [default].")
def key_create(
    api: Api,
    name: str,
    role: str,
    groups: tuple[str, ...],
    expires_in_days: float | None,
    tenant: str | None,
) -> None:
    """Make a key and print it: it is shown this once, and kept nowhere."""
    body: dict[str, Any] = {"name": name, "role": role}
    if groups:
        body["groups"] = list(groups)
    if expires_in_days is not None:
        body["expiresInDays"] = expires_in_days
    if tenant is not None:
        body["tenant"] = tenant
    made = api.request("POST", "/api/keys", json=body)
    if api.as_json:
        api.show(made)
        return
    click.echo(made["key"])
    click.echo(
        f"API key {made['id']} ({made['name']}, {made['role']}): copy it now, it is not "
        "shown again",
        err=True,
    )


@key.command("list")
@api_options
def key_list(api: Api) -> None:
    """List the keys (never their secrets)."""
    keys = api.request("GET", "/api/keys")
    if api.as_json:
        api.show(keys)
        return
    for each in keys:
        for name in ("expiresAt", "revokedAt", "usedAt"):
            each[name] = iso_ms(each[name]) if each[name] is not None else None
    api.show(keys, KEY_COLUMNS)


@key.command("revoke")
@api_options
@click.argument("key_id", type=int)
def key_revoke(api: Api, key_id: int) -> None:
    """Revoke a key: refused from now on (it is kept, marked revoked)."""
    revoked = api.request("DELETE", f"/api/keys/{key_id}")
    if api.as_json:
        api.show(revoked)
        return
    click.echo(f"API key {key_id} ({revoked['name']}) revoked")
