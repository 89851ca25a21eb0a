"""``/api/devices`` and ``/api/products/{pk}/devices/{dn}``: create, list with filters, show,
credentials (and a thingsboard product's device's access token or basic MQTT credentials, set),
disable and enable, change, delete, unbind from a gateway; latest properties, property set,
services."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import msgspec
from litestar import delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from hongshan import messages
from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import DesiredValues, DeviceShadows, GatewayTopology, Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.identity.principals import Role
from hongshan.messages import MAX_WAIT, CommandResult, Problem
from hongshan.messages.commands import CommandKind
from hongshan.services.commands import DeviceCommands, InvalidCall
from hongshan.store.registry.store import SQLRegistry
from hongshan.things import naming
from hongshan.things.device_query import DEVICE_ORDERS
from hongshan.things.model import (
    Device,
    DeviceFilter,
    DeviceState,
    Location,
    MqttBasic,
    Protocol,
    RegistryError,
)
from hongshan.twin.properties import PropertyTwin
from hongshan.twin.shadow import Shadow, delta

DEVICE = "/api/products/{pk:str}/devices/{dn:str}"


# Alibaba's tag limits: at most 100 per device; a key of up to 30 characters, a value of up
# to 128 ("Limits", "Tags")
MAX_TAGS = 100
TagKey = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
TagValue = Annotated[str, msgspec.Meta(max_length=128)]
Tags = Annotated[dict[TagKey, TagValue], msgspec.Meta(max_length=MAX_TAGS)]


class NewDevice(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    device_name: str | None = None  # generated when left out
    nickname: str = ""
    tags: Tags = {}
    location: Location | None = None
    gateway: tuple[str, str] | None = None  # (productKey, deviceName)
    device_secret: str | None = None  # keep a device's secret when moving it from Alibaba Cloud
    access_token: str | None = None  # a thingsboard product's: keep one (else one is made)


MAX_BATCH = 10_000  # devices one batch registration makes (a count, or a list of names)


class DeviceBatch(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    # these names, or (a list of 100,000 made 100,000 devices: bounded as the count is)
    device_names: Annotated[list[str], msgspec.Meta(max_length=MAX_BATCH)] = []
    count: int = 0  # this many generated ones
    # secrets to keep (devices moved from Alibaba Cloud), by name
    device_secrets: dict[str, str] = {}


class Triple(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    product_key: str
    device_name: str
    device_secret: str
    access_token: str | None = None  # a thingsboard product's device's


class DeviceChange(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    nickname: str | None = None
    tags: Tags | None = None
    remove_tags: list[str] = []
    location: Location | None = None


class DeviceRef(msgspec.Struct, kw_only=True, rename="camel"):
    product_key: str
    device_name: str


class Credentials(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    product_key: str
    device_name: str
    device_secret: str
    # a thingsboard product's device logs in with one of these (an Alink one's has neither)
    access_token: str | None = None
    mqtt_basic: MqttBasic | None = None


class CredentialsChange(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """One of: an access token, ``newAccessToken: true`` (one is made), basic MQTT
    credentials."""

    access_token: str | None = None
    new_access_token: bool = False
    mqtt_basic: MqttBasic | None = None


class PropertySet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    params: dict[str, Any]
    wait: float | None = None  # seconds to wait for the device's reply (at most MAX_WAIT)


class ServiceCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    params: dict[str, Any] = {}
    timeout: float = 5.0


class ShadowView(msgspec.Struct, kw_only=True):
    state: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    delta: dict[str, Any]  # desired attributes the device has not reported yet


class DesiredChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    desired: dict[str, Any] | Literal["null"]  # "null" values (or the whole) clear attributes
    version: int | None = None  # must be greater than the shadow's; default: the next one


def _shadow_view(shadow: Shadow) -> ShadowView:
    return ShadowView(
        state=shadow.state(),
        metadata=shadow.metadata(),
        version=shadow.version,
        delta=delta(shadow),
    )


class DesiredSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    params: dict[str, Any]
    versions: dict[str, int] = {}  # the version each was read at; a stale one is a 409


class DesiredView(msgspec.Struct, kw_only=True):
    value: Any
    version: int
    time: int


class RrpcCall(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    payload: str | None = None  # text (UTF-8)
    payload_base64: str | None = None  # or bytes
    topic: str | None = None  # one of the device's own custom topics: RRPC over it
    timeout: float = 5.0


class CallAnswer(msgspec.Struct, kw_only=True, rename="camel"):
    """A device's answer to a property set or a service call, or ours when it gave none:
    ``outcome`` replied, sent (not waited for), timed_out, offline; ``code`` the protocol's
    reply code (the device's, or its dialect's for an outcome the device did not answer)."""

    msg_id: str
    outcome: str
    code: int
    data: Any = None
    message: str = ""
    problems: list[Problem] = []  # the reply's data does not fit the model
    command_id: int = 0  # its record (``GET /api/commands/{id}``)

    @classmethod
    def of(cls, result: CommandResult, command_id: int = 0) -> CallAnswer:
        return cls(
            msg_id=result.call_id,
            outcome=result.outcome,
            code=result.code,
            data=result.output,
            message=result.message,
            problems=result.problems,
            command_id=command_id,
        )


class RrpcAnswer(msgspec.Struct, kw_only=True, rename="camel"):
    msg_id: str
    code: int
    message: str
    payload: str | None = None  # the device's answer, when it is text
    payload_base64: str | None = None  # else its bytes
    command_id: int = 0  # its record (``GET /api/commands/{id}``)


class Value(msgspec.Struct, kw_only=True):
    value: Any
    time: int


SET, CALL, RAW = CommandKind.SET, CommandKind.CALL, CommandKind.RAW


def _wait_within(field: str, seconds: float | None, *, positive: bool = False) -> None:
    """A call waits at most ``MAX_WAIT`` for a device (Alibaba's limit for RRPC and
    synchronous services): a longer wait is refused, not cut short in silence."""
    if seconds is None or (0 < seconds <= MAX_WAIT) or (seconds == 0 and not positive):
        return
    least = "more than 0" if positive else "0"
    raise RegistryError(
        f"{field}: {seconds:g} s is not within {least} to {MAX_WAIT:g} s, the longest a call "
        "waits for a device (Alibaba's limit for RRPC and synchronous services)",
        "invalid",
    )


def _tags(raw: list[str] | None) -> dict[str, str] | None:
    if not raw:
        return None
    tags = {}
    for item in raw:
        key, colon, value = item.partition(":")
        if not colon:
            raise RegistryError(f"tag filter {item!r}: write it key:value", "invalid")
        tags[key] = value
    return tags


@post("/api/products/{pk:str}/devices", status_code=201)
async def create_device(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    pk: FromPath[str],
    data: JSONBody[NewDevice],
) -> Device:
    access.product(pk)
    if data.gateway is not None:
        access.device(*data.gateway)
    return await registry.create_device(
        pk,
        data.device_name,
        nickname=data.nickname,
        tags=data.tags,
        location=data.location,
        gateway=data.gateway,
        device_secret=data.device_secret,
        access_token=data.access_token,
    )


@post("/api/products/{pk:str}/devices/batch", status_code=201)
async def create_devices(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    pk: FromPath[str],
    data: JSONBody[DeviceBatch],
) -> list[Triple]:
    """Many devices in one go (Alibaba's batch registration): all of them, or none."""
    access.product(pk)
    if bool(data.device_names) == bool(data.count) or not 0 <= data.count <= MAX_BATCH:
        raise RegistryError(f"give deviceNames, or a count of 1 to {MAX_BATCH:,}", "invalid")
    names = data.device_names or [naming.new_device_name() for _ in range(data.count)]
    if len(set(names)) != len(names):
        raise RegistryError("deviceNames repeat a name", "invalid")
    secrets = await registry.create_devices(pk, names, secrets=data.device_secrets)
    view = registry.directory.product_view(pk)
    tokens = {}
    if view is not None and view.protocol is Protocol.THINGSBOARD:
        tokens = await registry.access_tokens(pk, secrets)
    return [
        Triple(product_key=pk, device_name=n, device_secret=s, access_token=tokens.get(n))
        for n, s in secrets.items()
    ]


@get("/api/devices", dependencies=PAGED)
async def list_devices(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    paging: Paged,
    product_key: Annotated[str | None, QueryParameter(name="productKey")] = None,
    device_state: Annotated[DeviceState | None, QueryParameter(name="state")] = None,
    name_prefix: Annotated[str | None, QueryParameter(name="namePrefix")] = None,
    group: FromQuery[str | None] = None,
    tag: Annotated[list[str] | None, QueryParameter(description="key:value, repeatable")] = None,
    tenant: Annotated[
        str | None, QueryParameter(description="the group's, for the admin token")
    ] = None,
) -> Page[Device]:
    """Sorted by ``createdAt`` (or ``deviceName``, ``productKey``, ``lastOnlineAt``,
    ``state``); ``q`` in the name or nickname."""
    where = DeviceFilter(
        product_key=product_key,
        state=device_state,
        name_prefix=name_prefix,
        group=group,
        tags=_tags(tag),
        text=paging.q,
        order=paging.order(list(DEVICE_ORDERS), default="createdAt"),
        limit=paging.limit,
        offset=paging.offset,
        reach=access.list_reach(group, tenant),  # (a group's name is its tenant's)
    )
    return paging.page(*registry.device_page(where))


@get(DEVICE)
async def show_device(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str], dn: FromPath[str]
) -> Device:
    access.device(pk, dn)
    return await registry.get_device(pk, dn)


@get(DEVICE + "/credentials", opt={"role": Role.ADMIN})  # (the device's secret)
async def credentials(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str], dn: FromPath[str]
) -> Credentials:
    access.device(pk, dn)
    return _credentials(await registry.get_device(pk, dn, with_secret=True))


@put(DEVICE + "/credentials")
async def set_credentials(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    pk: FromPath[str],
    dn: FromPath[str],
    data: JSONBody[CredentialsChange],
) -> Credentials:
    """A thingsboard product's device's login, replacing the one it had (an online device
    is disconnected, to log in with the new one)."""
    access.device(pk, dn)
    device = await registry.set_credentials(
        pk,
        dn,
        access_token=data.access_token,
        new_access_token=data.new_access_token,
        mqtt_basic=data.mqtt_basic,
    )
    return _credentials(device)


def _credentials(device: Device) -> Credentials:
    """A device's login as the API shows it (its secret, and a thingsboard device's token
    or basic credentials)."""
    assert device.device_secret is not None
    return Credentials(
        product_key=device.product_key,
        device_name=device.device_name,
        device_secret=device.device_secret,
        access_token=device.access_token,
        mqtt_basic=device.mqtt_basic,
    )


@post(DEVICE + "/disable", status_code=200)
async def disable(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str], dn: FromPath[str]
) -> Device:
    access.device(pk, dn)
    return await registry.set_enabled(pk, dn, False)


@post(DEVICE + "/enable", status_code=200)
async def enable(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str], dn: FromPath[str]
) -> Device:
    access.device(pk, dn)
    return await registry.set_enabled(pk, dn, True)


@patch(DEVICE)
async def change_device(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    pk: FromPath[str],
    dn: FromPath[str],
    data: JSONBody[DeviceChange],
) -> Device:
    access.device(pk, dn)
    if data.tags:
        kept = (await registry.get_device(pk, dn)).tags.keys() - set(data.remove_tags)
        if len(kept | data.tags.keys()) > MAX_TAGS:
            raise RegistryError(f"tags: a device has at most {MAX_TAGS}", "invalid")
    return await registry.update_device(
        pk,
        dn,
        nickname=data.nickname,
        tags=data.tags,
        remove_tags=data.remove_tags,
        location=data.location,
    )


@delete(DEVICE, status_code=204)
async def delete_device(
    access: Provided[Scope], registry: Provided[SQLRegistry], pk: FromPath[str], dn: FromPath[str]
) -> None:
    access.device(pk, dn)
    await registry.delete_device(pk, dn)


@delete(
    DEVICE + "/gateway",
    status_code=200,
    summary="Unbind a sub-device from its gateway",
    description=(
        "Takes the sub-device out of its gateway's topology (Alibaba's RemoveThingTopo), "
        "for a gateway that cannot delete it itself: the sub-device is logged out if it is "
        "online through that gateway, the gateway is told of the change (as Alibaba tells a "
        "gateway of changes made in the cloud), and another gateway may then add it. "
        "Answers the gateway it was taken from; 404 when there is no such device or it "
        "has no gateway."
    ),
)
async def unbind_gateway(
    access: Provided[Scope],
    gateways: Provided[GatewayTopology],
    pk: FromPath[str],
    dn: FromPath[str],
) -> DeviceRef:
    access.device(pk, dn)
    gateway = await gateways.unbind((pk, dn))
    if gateway is None:
        raise RegistryError(f"device {dn} of product {pk} has no gateway", "not_found")
    return DeviceRef(product_key=gateway[0], device_name=gateway[1])


@get(DEVICE + "/properties")
async def properties(
    access: Provided[Scope],
    twin: Provided[PropertyTwin],
    pk: FromPath[str],
    dn: FromPath[str],
) -> dict[str, Value]:
    access.device(pk, dn)
    values = twin.values(pk, dn)
    return {key: Value(value=v.value, time=v.time) for key, v in values.items()}


@post(DEVICE + "/properties", status_code=200, opt=OPERATOR)
async def set_properties(
    access: Provided[Scope],
    commands: Provided[DeviceCommands],
    pk: FromPath[str],
    dn: FromPath[str],
    data: JSONBody[PropertySet],
) -> CallAnswer:
    access.device(pk, dn)
    _wait_within("wait", data.wait)
    device = messages.DeviceRef(pk, dn)
    record, result = await commands.send(device, SET, "set", data.params, data.wait, None, "api")
    return CallAnswer.of(result, record.id)


@post(DEVICE + "/services/{identifier:str}", status_code=200, opt=OPERATOR)
async def invoke(
    access: Provided[Scope],
    commands: Provided[DeviceCommands],
    pk: FromPath[str],
    dn: FromPath[str],
    identifier: FromPath[str],
    data: JSONBody[ServiceCall],
) -> CallAnswer:
    access.device(pk, dn)
    _wait_within("timeout", data.timeout)
    device = messages.DeviceRef(pk, dn)
    wait = data.timeout or None
    record, result = await commands.send(device, CALL, identifier, data.params, wait, None, "api")
    return CallAnswer.of(result, record.id)


@get(DEVICE + "/shadow")
async def shadow(
    access: Provided[Scope],
    shadows: Provided[DeviceShadows],
    pk: FromPath[str],
    dn: FromPath[str],
) -> ShadowView:
    access.device(pk, dn)
    return _shadow_view(shadows.get(pk, dn))


@put(DEVICE + "/shadow", opt=OPERATOR)
async def change_shadow(
    access: Provided[Scope],
    shadows: Provided[DeviceShadows],
    pk: FromPath[str],
    dn: FromPath[str],
    data: JSONBody[DesiredChange],
) -> ShadowView:
    """Change the desired state; an online device is sent the document at once."""
    access.device(pk, dn)
    changed = shadows.set_desired(pk, dn, data.desired, data.version)
    return _shadow_view(changed)


@get(DEVICE + "/desired")
async def desired(
    access: Provided[Scope],
    desired_values: Provided[DesiredValues],
    pk: FromPath[str],
    dn: FromPath[str],
) -> dict[str, DesiredView]:
    access.device(pk, dn)
    values = desired_values.get(pk, dn)
    return {
        k: DesiredView(value=v.value, version=v.version, time=v.time) for k, v in values.items()
    }


@put(DEVICE + "/desired", opt=OPERATOR)
async def set_desired(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    desired_values: Provided[DesiredValues],
    pk: FromPath[str],
    dn: FromPath[str],
    data: JSONBody[DesiredSet],
) -> dict[str, DesiredView]:
    """Values the device should take: sent as a property set now if it is online, else
    when it comes back; it reads them with desired/get and clears them once applied."""
    access.device(pk, dn)
    model = registry.directory.thing_model_of(pk)
    if model is not None:
        problems = model.check_property_set(data.params)
        if problems:
            raise InvalidCall(problems)
    values = desired_values.set(pk, dn, data.params, data.versions)
    return {
        k: DesiredView(value=v.value, version=v.version, time=v.time) for k, v in values.items()
    }


@post(DEVICE + "/rrpc", status_code=200, opt=OPERATOR)
async def rrpc(
    access: Provided[Scope],
    commands: Provided[DeviceCommands],
    pk: FromPath[str],
    dn: FromPath[str],
    data: JSONBody[RrpcCall],
) -> RrpcAnswer:
    """A synchronous call with raw bytes (Alibaba's RRPC), answered within ``timeout``."""
    access.device(pk, dn)
    _wait_within("timeout", data.timeout, positive=True)
    if (data.payload is None) == (data.payload_base64 is None):
        raise RegistryError("give payload or payloadBase64", "invalid")
    try:
        raw = (
            data.payload.encode()
            if data.payload is not None
            else base64.b64decode(data.payload_base64 or "", validate=True)
        )
    except ValueError:
        raise RegistryError("payloadBase64 is not base64", "invalid") from None
    device = messages.DeviceRef(pk, dn)
    params = {"payloadBase64": base64.b64encode(raw).decode()}
    record, result = await commands.send(
        device, RAW, data.topic or "", params, data.timeout, None, "api"
    )
    answer = RrpcAnswer(
        msg_id=result.call_id, code=result.code, message=result.message, command_id=record.id
    )
    if isinstance(result.output, bytes):
        try:
            answer.payload = result.output.decode()
        except UnicodeDecodeError:
            answer.payload_base64 = base64.b64encode(result.output).decode()
    return answer


ROUTES = (
    create_devices,
    rrpc,
    desired,
    set_desired,
    shadow,
    change_shadow,
    create_device,
    list_devices,
    show_device,
    credentials,
    set_credentials,
    disable,
    enable,
    change_device,
    delete_device,
    unbind_gateway,
    properties,
    set_properties,
    invoke,
)
