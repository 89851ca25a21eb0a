"""``hongshan command …``: tracked commands from the command line, as a client of the REST API
(the options of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).

``command send`` with one target and one of ``--set`` or ``--call``::

    --device PK/DN               one device
    --group NAME                 the devices of a group (a street, a district)
    --product PK                 every device of a product (or, with --tag, narrows it)
    --tag KEY:VALUE              the devices with that tag
    --district NAME              the devices whose location is in that district
    --set JSON                   property values, e.g. '{"LightSwitch": 1}'
    --call SERVICE               a service of the thing model, with --params JSON
    --wait SECONDS               how long each device's answer is waited for (at most 8)
    --ttl SECONDS                how long it may wait queued for an offline device

One device prints the command (its state, code, output); many print the batch, whose progress
``command batch ID`` shows. ``command list`` (``--device``, ``--product``, ``--state``,
``--origin``, ``--batch``, ``--limit``, ``--offset``), ``command show ID``, ``command cancel ID``
(a queued one).
"""

from __future__ import annotations

import json
from typing import Any

import click

from hongshan.cli_api import Api, api_options

COMMAND_COLUMNS = ("id", "productKey", "deviceName", "service", "state", "code", "origin")


@click.group()
def command() -> None:
    """Commands to devices: property sets and service calls, tracked to their end."""


def _device(text: str) -> tuple[str, str]:
    pk, found, dn = text.partition("/")
    if not found or not pk or not dn:
        raise click.BadParameter(f"{text!r}: write PRODUCTKEY/DEVICENAME")
    return pk, dn


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{name}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{name}: a JSON object, e.g. '{{\"LightSwitch\": 1}}'")
    return value


def _target(
    device: str | None,
    group: str | None,
    product: str | None,
    tag: str | None,
    district: str | None,
) -> dict[str, str]:
    target: dict[str, str] = {}
    if device is not None:
        if product is not None:
            raise click.BadParameter("--device names its product: leave out --product")
        target["productKey"], target["deviceName"] = _device(device)
    if product is not None:
        target["productKey"] = product
    for key, value in (("group", group), ("tag", tag), ("district", district)):
        if value is not None:
            target[key] = value
    if not target:
        raise click.BadParameter("give --device, --group, --product, --tag or --district")
    return target


@command.command("send")
@api_options
@click.option("--device", metavar="PK/DN")
@click.option("--group", metavar="NAME")
@click.option("--product", metavar="PK")
@click.option("--tag", metavar="KEY:VALUE")
@click.option("--district", metavar="NAME")
@click.option("--set", "values", metavar="JSON", help="Property values to set.")
@click.option("--call", "service", metavar="SERVICE", help="A service to call.")
@click.option("--params", metavar="JSON", default="{}", help="The service's input [{}].")
@click.option("--wait", type=float, help="Seconds to wait for each device's answer.")
@click.option("--ttl", type=float, help="Seconds it may wait queued for an offline device.")
def command_send(
    api: Api,
    device: str | None,
    group: str | None,
    product: str | None,
    tag: str | None,
    district: str | None,
    values: str | None,
    service: str | None,
    params: str,
    wait: float | None,
    ttl: float | None,
) -> None:
    """Set properties on, or call a service of, a device or many."""
    body: dict[str, Any] = {
        "target": _target(device, group, product, tag, district),
        "origin": "cli",
    }
    if (values is None) == (service is None):
        raise click.BadParameter("give one of --set or --call")
    if values is not None:
        body["set"] = _json_object("--set", values)
    else:
        body["call"] = {"service": service, "params": _json_object("--params", params)}
    if wait is not None:
        body["wait"] = wait
    if ttl is not None:
        body["ttl"] = ttl
    api.show(api.request("POST", "/api/commands", json=body))


@command.command("list")
@api_options
@click.option("--device", metavar="PK/DN")
@click.option("--product", metavar="PK")
@click.option("--state", help="queued, sent, replied, timed_out, failed, expired, cancelled")
@click.option("--origin", help="api, cli, rule:ID, scene:ID")
@click.option("--batch", type=int)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
def command_list(
    api: Api,
    device: str | None,
    product: str | None,
    state: str | None,
    origin: str | None,
    batch: int | None,
    limit: int,
    offset: int,
) -> None:
    """The commands kept, newest first."""
    query: dict[str, Any] = {"limit": limit, "offset": offset}
    if device is not None:
        query["productKey"], query["deviceName"] = _device(device)
    if product is not None:
        query["productKey"] = product
    for key, value in (("state", state), ("origin", origin), ("batch", batch)):
        if value is not None:
            query[key] = value
    page = api.request("GET", "/api/commands", params=query)
    api.show(page if api.as_json else page["items"], COMMAND_COLUMNS)


@command.command("show")
@api_options
@click.argument("command_id", type=int)
def command_show(api: Api, command_id: int) -> None:
    """A command: what was asked, each step's time, how it ended."""
    api.show(api.request("GET", f"/api/commands/{command_id}"))


@command.command("cancel")
@api_options
@click.argument("command_id", type=int)
def command_cancel(api: Api, command_id: int) -> None:
    """Cancel a command waiting queued for its offline device."""
    api.show(api.request("POST", f"/api/commands/{command_id}/cancel"))


@command.command("batch")
@api_options
@click.argument("batch_id", type=int)
def command_batch(api: Api, batch_id: int) -> None:
    """A batch's progress: how many of its commands are in each state."""
    api.show(api.request("GET", f"/api/command-batches/{batch_id}"))
