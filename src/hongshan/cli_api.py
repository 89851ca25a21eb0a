"""``hongshan product|device|group …``: the command line as a client of the REST API.

Every command takes ``--server`` (default ``http://127.0.0.1:8080``, or ``HONGSHAN_SERVER``),
``--token`` (default: ``HONGSHAN_TOKEN``, else the ``admin.token`` in ``--data-dir``) and
``--json`` (print the API's JSON instead of a table).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from rich.console import Console
from rich.table import Table

from hongshan.api.token import read_token

F = TypeVar("F", bound=Callable[..., Any])
DEVICE_COLUMNS = ("productKey", "deviceName", "state", "nickname", "lastOnlineAt", "lastIp")
PRODUCT_COLUMNS = (
    "productKey",
    "name",
    "protocol",
    "nodeType",
    "dataFormat",
    "dynamicRegistration",
)


PAGE = 1000  # the most items a list answers at once


class Api:
    def __init__(self, server: str, token: str | None, as_json: bool) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.as_json = as_json
        self.console = Console()

    def request(
        self, method: str, path: str, *, raw: bool = False, timeout: float = 30, **kwargs: Any
    ) -> Any:
        """The API's JSON answer (its text when ``raw``); a problem becomes a ClickException."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, self.server + path, headers=headers, timeout=timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.server}: {exc}") from None
        if response.is_error:
            try:
                problem = response.json()
                detail = problem.get("detail", response.text)
                for item in problem.get("problems", []):
                    detail += f"\n  {item['identifier']}: {item['message']} ({item['kind']})"
            except ValueError:
                detail = response.text
            raise click.ClickException(f"{response.status_code}: {detail}")
        if raw:
            return response.text
        return response.json() if response.content else None

    def every(self, path: str, **params: Any) -> list[Any]:
        """Every item of a list (the API's ``Page``s, a thousand at a time)."""
        items: list[Any] = []
        while True:
            page = self.request("GET", path, params={**params, "limit": PAGE, "offset": len(items)})
            items.extend(page["items"])
            if not page["items"] or len(items) >= page["total"]:
                return items

    def show(self, value: Any, columns: tuple[str, ...] | None = None) -> None:
        if self.as_json or value is None:
            if value is not None:
                click.echo(json.dumps(value, ensure_ascii=False, indent=2))
            return
        if isinstance(value, list):
            table = Table(*(columns or ()))
            for item in value:
                table.add_row(*(_cell(item.get(c)) for c in columns or ()))
            self.console.print(table)
            return
        table = Table(show_header=False)
        for key, item in value.items():
            table.add_row(key, _cell(item))
        self.console.print(table)


def moment(text: str) -> int | str:
    """A ``--from``/``--to``: ms since the epoch, else the text as given (ISO 8601, which the
    API reads)."""
    return int(text) if text.isdigit() else text


def iso_ms(ms: int) -> str:
    """ms since the epoch as ISO 8601 in UTC, to the millisecond."""
    at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def api_options(fn: F) -> F:
    @click.option("--server", envvar="HONGSHAN_SERVER", default="http://127.0.0.1:8080")
    @click.option("--token", envvar="HONGSHAN_TOKEN", help="[DATA_DIR/admin.token]")
    @click.option("--data-dir", default="./hongshan-data", help="Where to find admin.token.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @functools.wraps(fn)
    def wrapper(server: str, token: str | None, data_dir: str, as_json: bool, **kwargs: Any) -> Any:
        token = token or read_token(Path(data_dir))
        return fn(Api(server, token, as_json), **kwargs)

    return wrapper  # type: ignore[return-value]


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise click.BadParameter("give a JSON object, e.g. '{\"Brightness\": 40}'")
    return value


def _pairs(items: tuple[str, ...], sep: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found:
            raise click.BadParameter(f"{item!r}: write key{sep}value")
        pairs[key] = value
    return pairs


# -- products ---------------------------------------------------------------------------------


@click.group()
def product() -> None:
    """Products: their node type, topic classes and thing model."""


@product.command("create")
@api_options
@click.option("--name", required=True)
@click.option("--description", default="")
@click.option("--tsl", type=click.File("rb"), help="Alibaba TSL JSON file (thing model).")
@click.option(
    "--node-type", type=click.Choice(["device", "gateway", "subdevice"]), default="device"
)
@click.option("--data-format", type=click.Choice(["alink", "raw"]), default="alink")
@click.option("--dynamic-registration", is_flag=True, help="Allow one-secret-per-product.")
@click.option("--product-key", help="Keep the key of a product moved from Alibaba Cloud.")
@click.option("--product-secret", help="… and its secret.")
@click.option(
    "--protocol",
    type=click.Choice(["alink", "thingsboard"]),
    default="alink",
    help="What its devices speak: Alibaba's Alink, or ThingsBoard's MQTT device API [alink].",
)
@click.option(
    "--schemaless", is_flag=True, help="Add properties to the thing model as devices report them."
)
@click.option("--tenant", help="Whose it is (the admin token's choice) [default].")
def product_create(api: Api, tsl: Any, **fields: Any) -> None:
    """Create a product; prints it with its ProductKey and ProductSecret."""
    body = {_camel(k): v for k, v in fields.items() if v is not None}
    if tsl is not None:
        body["thingModel"] = json.loads(tsl.read())
    api.show(api.request("POST", "/api/products", json=body))


@product.command("list")
@api_options
def product_list(api: Api) -> None:
    """List the products."""
    api.show(api.every("/api/products"), PRODUCT_COLUMNS)


@product.command("show")
@api_options
@click.argument("product_key")
@click.option("--secret", is_flag=True, help="Include the product secret.")
def product_show(api: Api, product_key: str, secret: bool) -> None:
    """Show a product."""
    params = {"secret": "true"} if secret else {}
    api.show(api.request("GET", f"/api/products/{product_key}", params=params))


@product.command("export-tsl")
@api_options
@click.argument("product_key")
def product_export_tsl(api: Api, product_key: str) -> None:
    """Print the thing model as Alibaba's TSL JSON."""
    model = api.request("GET", f"/api/products/{product_key}/thing-model")
    click.echo(json.dumps(model, ensure_ascii=False, indent=2))


@product.command("import-tsl")
@api_options
@click.argument("product_key")
@click.argument("tsl", type=click.File("rb"))
def product_import_tsl(api: Api, product_key: str, tsl: Any) -> None:
    """Replace the thing model with an Alibaba TSL JSON file."""
    body = json.loads(tsl.read())
    api.request("PUT", f"/api/products/{product_key}/thing-model", json=body)
    click.echo(f"thing model of {product_key} imported")


@product.command("delete")
@api_options
@click.argument("product_key")
def product_delete(api: Api, product_key: str) -> None:
    """Delete a product that has no devices left."""
    api.request("DELETE", f"/api/products/{product_key}")
    click.echo(f"product {product_key} deleted")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# -- devices ----------------------------------------------------------------------------------


def device_options(fn: F) -> F:
    fn = click.option("--name", "device_name", required=True, help="DeviceName.")(fn)
    return click.option("--product", "product_key", required=True, help="ProductKey.")(fn)


def _device_path(product_key: str, device_name: str) -> str:
    return f"/api/products/{product_key}/devices/{device_name}"


@click.group()
def device() -> None:
    """Devices: create, list, show, credentials, disable, enable, delete, unbind from a
    gateway, set properties, call services."""


@device.command("create")
@api_options
@click.option("--product", "product_key", required=True, help="ProductKey.")
@click.option("--name", "device_name", help="DeviceName [generated].")
@click.option("--nickname", default="")
@click.option("--tag", "tags", multiple=True, help="key=value, repeatable.")
@click.option("--count", type=int, help="Create this many devices with generated names.")
@click.option("--access-token", help="A thingsboard product's device: this token [generated].")
def device_create(
    api: Api,
    product_key: str,
    device_name: str | None,
    nickname: str,
    tags: tuple[str, ...],
    count: int | None,
    access_token: str | None,
) -> None:
    """Create a device; prints it with its DeviceSecret, and a thingsboard product's device with
    its access token (shown once here, or by credentials). With --count, many devices at
    once, printed as a table of triples."""
    if count is not None:
        path = f"/api/products/{product_key}/devices/batch"
        triples = api.request("POST", path, json={"count": count})
        columns = ("productKey", "deviceName", "deviceSecret")
        if any(triple.get("accessToken") for triple in triples):
            columns = ("productKey", "deviceName", "accessToken")
        api.show(triples, columns)
        return
    body: dict[str, Any] = {"nickname": nickname, "tags": _pairs(tags, "=")}
    if device_name:
        body["deviceName"] = device_name
    if access_token:
        body["accessToken"] = access_token
    api.show(api.request("POST", f"/api/products/{product_key}/devices", json=body))


@device.command("list")
@api_options
@click.option("--product", "product_key", help="Only this product's devices.")
@click.option("--state", type=click.Choice(["inactive", "online", "offline", "disabled"]))
@click.option("--name-prefix")
@click.option("--group")
@click.option("--tenant", help="The group's tenant (the admin token's, where several have one).")
@click.option("--tag", "tags", multiple=True, help="key:value, repeatable.")
@click.option("--search", "q", help="Text in the name or nickname.")
@click.option(
    "--sort", help="createdAt, deviceName, productKey, lastOnlineAt or state; -FIELD descends."
)
@click.option("--limit", type=int, default=100)
@click.option("--offset", type=int, default=0)
def device_list(api: Api, tags: tuple[str, ...], **filters: Any) -> None:
    """List devices, narrowed by product, state, name prefix, group, tags and text."""
    params: dict[str, Any] = {_camel(k): v for k, v in filters.items() if v is not None}
    if tags:
        params["tag"] = list(tags)
    page = api.request("GET", "/api/devices", params=params)
    if api.as_json:
        api.show(page)
        return
    api.show(page["items"], DEVICE_COLUMNS)
    click.echo(f"{len(page['items'])} of {page['total']}")


@device.command("show")
@api_options
@device_options
def device_show(api: Api, product_key: str, device_name: str) -> None:
    """Show a device and its latest property values."""
    path = _device_path(product_key, device_name)
    shown = api.request("GET", path)
    shown["properties"] = api.request("GET", path + "/properties")
    api.show(shown)


@device.command("credentials")
@api_options
@device_options
def device_credentials(api: Api, product_key: str, device_name: str) -> None:
    """The device's triple (ProductKey, DeviceName, DeviceSecret) for its firmware; for a
    thingsboard product's device, its access token or basic MQTT credentials too."""
    api.show(api.request("GET", _device_path(product_key, device_name) + "/credentials"))


@device.command("set-credentials")
@api_options
@device_options
@click.option("--access-token", help="Log in with this access token.")
@click.option("--new-access-token", is_flag=True, help="Log in with a freshly made token.")
@click.option("--client-id", help="Basic MQTT credentials: this client id,")
@click.option("--username", help="… and/or this username,")
@click.option("--password", help="… and this password (none: any will do).")
def device_set_credentials(
    api: Api,
    product_key: str,
    device_name: str,
    access_token: str | None,
    new_access_token: bool,
    client_id: str | None,
    username: str | None,
    password: str | None,
) -> None:
    """Give a thingsboard product's device an access token or basic MQTT credentials,
    replacing what it had; an online device is disconnected. Prints its credentials."""
    body: dict[str, Any] = {}
    if access_token is not None:
        body["accessToken"] = access_token
    if new_access_token:
        body["newAccessToken"] = True
    if client_id is not None or username is not None or password is not None:
        body["mqttBasic"] = {"clientId": client_id, "username": username, "password": password}
    path = _device_path(product_key, device_name) + "/credentials"
    api.show(api.request("PUT", path, json=body))


@device.command("disable")
@api_options
@device_options
def device_disable(api: Api, product_key: str, device_name: str) -> None:
    """Refuse its CONNECTs from now on; an online device is disconnected."""
    api.show(api.request("POST", _device_path(product_key, device_name) + "/disable"))


@device.command("enable")
@api_options
@device_options
def device_enable(api: Api, product_key: str, device_name: str) -> None:
    """Accept its CONNECTs again."""
    api.show(api.request("POST", _device_path(product_key, device_name) + "/enable"))


@device.command("delete")
@api_options
@device_options
def device_delete(api: Api, product_key: str, device_name: str) -> None:
    """Delete a device; an online device is disconnected."""
    api.request("DELETE", _device_path(product_key, device_name))
    click.echo(f"device {device_name} of {product_key} deleted")


@device.command("unbind")
@api_options
@device_options
def device_unbind(api: Api, product_key: str, device_name: str) -> None:
    """Take a sub-device out of its gateway's topology (for a gateway that cannot): it is
    logged out of that gateway, which is told, and another gateway may add it."""
    path = _device_path(product_key, device_name) + "/gateway"
    gateway = api.request("DELETE", path)
    if api.as_json:
        api.show(gateway)
        return
    click.echo(
        f"device {device_name} of {product_key} unbound from gateway "
        f"{gateway['deviceName']} of {gateway['productKey']}"
    )


@device.command("set")
@api_options
@device_options
@click.option("--params", required=True, help="Properties as JSON: '{\"Brightness\": 40}'.")
@click.option("--wait", type=float, help="Seconds to wait for the device's reply.")
def device_set(
    api: Api, product_key: str, device_name: str, params: str, wait: float | None
) -> None:
    """Set properties on a device; exit 1 unless it answered 200."""
    body = {"params": _params(params), "wait": wait}
    result = api.request("POST", _device_path(product_key, device_name) + "/properties", json=body)
    api.show(result)
    if result["code"] != 200:
        sys.exit(1)


@device.command("invoke")
@api_options
@device_options
@click.option("--service", "identifier", required=True, help="The service's identifier.")
@click.option("--params", default="{}", help="Input as JSON.")
@click.option("--timeout", type=float, default=5.0, help="Seconds to wait for the reply [5].")
def device_invoke(
    api: Api, product_key: str, device_name: str, identifier: str, params: str, timeout: float
) -> None:
    """Call a service on a device and print its answer; exit 1 unless it answered 200."""
    path = _device_path(product_key, device_name) + f"/services/{identifier}"
    result = api.request("POST", path, json={"params": _params(params), "timeout": timeout})
    api.show(result)
    if result["code"] != 200:
        sys.exit(1)


# -- groups -----------------------------------------------------------------------------------


@click.group()
def group() -> None:
    """Groups of devices: a district, a street."""


@group.command("create")
@api_options
@click.argument("name")
@click.option("--description", default="")
@click.option("--tenant", help="Whose it is (the admin token's choice) [default].")
def group_create(api: Api, name: str, description: str, tenant: str | None) -> None:
    """Create a group."""
    body = {"name": name, "description": description}
    if tenant is not None:
        body["tenant"] = tenant
    api.show(api.request("POST", "/api/groups", json=body))


@group.command("list")
@api_options
def group_list(api: Api) -> None:
    """List groups with their sizes."""
    api.show(api.every("/api/groups"), ("name", "size", "description"))


@group.command("add")
@api_options
@click.argument("name")
@click.argument("devices", nargs=-1, required=True, metavar="PK/DN...")
@click.option(
    "--tenant", help="The group's tenant (the admin token's, where several have one so named)."
)
def group_add(api: Api, name: str, devices: tuple[str, ...], tenant: str | None) -> None:
    """Add devices, each written PRODUCTKEY/DEVICENAME."""
    path = f"/api/groups/{name}/devices"
    api.show(api.request("POST", path, json=_members(devices), params=_of(tenant)))


@group.command("remove")
@api_options
@click.argument("name")
@click.argument("devices", nargs=-1, required=True, metavar="PK/DN...")
@click.option(
    "--tenant", help="The group's tenant (the admin token's, where several have one so named)."
)
def group_remove(api: Api, name: str, devices: tuple[str, ...], tenant: str | None) -> None:
    """Take devices (PRODUCTKEY/DEVICENAME) out of a group."""
    path = f"/api/groups/{name}/devices/remove"
    api.show(api.request("POST", path, json=_members(devices), params=_of(tenant)))


@group.command("delete")
@api_options
@click.argument("name")
@click.option(
    "--tenant", help="The group's tenant (the admin token's, where several have one so named)."
)
def group_delete(api: Api, name: str, tenant: str | None) -> None:
    """Delete a group (its devices stay)."""
    api.request("DELETE", f"/api/groups/{name}", params=_of(tenant))
    click.echo(f"group {name} deleted")


def _of(tenant: str | None) -> dict[str, str]:
    """The query naming a group's tenant, when given (a name is unique within a tenant)."""
    return {} if tenant is None else {"tenant": tenant}


def _members(devices: tuple[str, ...]) -> dict[str, Any]:
    members = []
    for item in devices:
        pk, found, dn = item.partition("/")
        if not found:
            raise click.BadParameter(f"{item!r}: write PRODUCTKEY/DEVICENAME")
        members.append({"productKey": pk, "deviceName": dn})
    return {"devices": members}
