"""``hongshan user …``: the people who log in to the API and the console, as a client of the
REST API (the options of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).
With the admin token (the default) it manages the users of every tenant.

``user add NAME [--role viewer|operator|admin] [--group G …] [--tenant T]
[--password-stdin]``, ``user list``, ``user show NAME``, ``user passwd NAME
[--password-stdin]`` (ends the user's sessions), ``user delete NAME``, ``user change NAME
[--role R] [--group G … | --all-groups] [--disable | --enable]``. A password is asked for
twice at the terminal unless ``--password-stdin`` reads it (one line) from standard input.
The API refuses (409, said on standard error) to demote, disable or delete a tenant's last
enabled admin.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

import click

from hongshan.cli_api import Api, api_options

USER_COLUMNS = ("name", "tenant", "role", "groups", "disabled")
ROLES = ("viewer", "operator", "admin")


@click.group()
def user() -> None:
    """Users: who logs in to the API and the console, with which role."""


def _password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    password = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("Again: ") != password:
        raise click.ClickException("the passwords differ")
    return password


@user.command("add")
@api_options
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--group", "groups", multiple=True, help="Limit to this device group (repeat).")
@click.option("--tenant", help="[the default tenant]")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(
    api: Api,
    name: str,
    role: str,
    groups: tuple[str, ...],
    tenant: str | None,
    password_stdin: bool,
) -> None:
    body: dict[str, Any] = {"name": name, "role": role, "groups": list(groups) or None}
    if tenant is not None:
        body["tenant"] = tenant
    body["password"] = _password(name, password_stdin)
    api.show(api.request("POST", "/api/users", json=body))


@user.command("list")
@api_options
def user_list(api: Api) -> None:
    api.show(api.every("/api/users"), USER_COLUMNS)


@user.command("show")
@api_options
@click.argument("name")
def user_show(api: Api, name: str) -> None:
    api.show(api.request("GET", f"/api/users/{name}"))


@user.command("passwd")
@api_options
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_passwd(api: Api, name: str, password_stdin: bool) -> None:
    """Set a user's password (their sessions end)."""
    body = {"password": _password(name, password_stdin)}
    api.request("PUT", f"/api/users/{name}/password", json=body)
    click.echo(f"{name}: password changed; their sessions are ended")


@user.command("delete")
@api_options
@click.argument("name")
def user_delete(api: Api, name: str) -> None:
    api.request("DELETE", f"/api/users/{name}")


@user.command("change")
@api_options
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES))
@click.option("--group", "groups", multiple=True, help="Limit to these groups (repeat).")
@click.option("--all-groups", is_flag=True, help="Lift the limit to groups.")
@click.option("--disable/--enable", "disabled", default=None, help="A disabled user is logged out.")
def user_change(
    api: Api,
    name: str,
    role: str | None,
    groups: tuple[str, ...],
    all_groups: bool,
    disabled: bool | None,
) -> None:
    if groups and all_groups:
        raise click.BadParameter("--group or --all-groups, not both")
    body: dict[str, Any] = {}
    if role is not None:
        body["role"] = role
    if groups or all_groups:
        body["groups"] = list(groups) or None
    if disabled is not None:
        body["disabled"] = disabled
    if not body:
        raise click.UsageError(
            "nothing to change: give --role, --group, --all-groups, --disable or --enable"
        )
    api.show(api.request("PATCH", f"/api/users/{name}", json=body))
