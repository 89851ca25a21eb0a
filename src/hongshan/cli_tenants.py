"""``hongshan tenant …``: the towns sharing this Hongshan, as a client of the REST API (the
options of ``cli_api``), with the admin token (only it manages tenants).

``tenant add ID [--name NAME]``, ``tenant list``, ``tenant delete ID`` (refused while the
tenant holds products, users, keys, groups, rules, scenes or routes).
"""

from __future__ import annotations

import click

from hongshan.cli_api import Api, api_options

TENANT_COLUMNS = ("id", "name", "createdAt")


@click.group()
def tenant() -> None:
    """Tenants: towns that share this Hongshan and never see each other's things."""


@tenant.command("add")
@api_options
@click.argument("tenant_id", metavar="ID")
@click.option("--name", help="[the id]")
def tenant_add(api: Api, tenant_id: str, name: str | None) -> None:
    body = {"id": tenant_id, "name": name or tenant_id}
    api.show(api.request("POST", "/api/tenants", json=body))


@tenant.command("list")
@api_options
def tenant_list(api: Api) -> None:
    api.show(api.every("/api/tenants"), TENANT_COLUMNS)


@tenant.command("delete")
@api_options
@click.argument("tenant_id", metavar="ID")
def tenant_delete(api: Api, tenant_id: str) -> None:
    api.request("DELETE", f"/api/tenants/{tenant_id}")
