"""``/api/commands`` and ``/api/command-batches``: send a property set or a service call to
one device or to the devices a group, product, tag or district chooses; list and show the
commands the platform keeps (from the API, the CLI, rules and scenes), cancel one that waits
queued for its offline device, and follow a batch's progress.

One device: answered 201 with the command's record once its dialect answered (within
``wait``), or once it is queued (``ttl`` given, device offline). Many: answered 202 with the
batch at once; its commands go out paced, and ``GET /api/command-batches/{id}`` counts them by
state. A refusal names what was wrong: the target, the call against the thing model (with its
problems), a ``wait`` or ``ttl`` out of bounds.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.messages import DEFAULT_WAIT, DeviceRef
from hongshan.messages.commands import (
    CommandBatch,
    CommandKind,
    CommandRecord,
    CommandState,
    Target,
)
from hongshan.services.commands import DeviceCommands
from hongshan.services.fanout import FanOut
from hongshan.store.registry.commands import COMMAND_ORDERS, MAX_ID, CommandFilter
from hongshan.things.model import RegistryError

COMMAND = "/api/commands/{command_id:int}"
ORIGINS = ("api", "cli")  # what a caller of the API may say it is (rules and scenes are ours)


class ServiceRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    service: str
    params: dict[str, Any] = {}


class CommandRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A command as a caller asks for it: ``target`` (``messages.commands.Target``), and one
    of ``set`` (property values) or ``call`` (a service and its params). ``wait``: seconds each
    device's answer is waited for (a set to one device: not waited for unless given; a call,
    and every command of a batch: 5 s); ``ttl``: seconds a command may wait queued for an
    offline device (unset: it fails at once)."""

    target: Target
    set: dict[str, Any] | None = None
    call: ServiceRequest | None = None
    wait: float | None = None
    ttl: float | None = None
    origin: str = "api"


def _what(data: CommandRequest) -> tuple[CommandKind, str, dict[str, Any]]:
    if (data.set is None) == (data.call is None):
        raise RegistryError("give one of set (property values) or call (a service)", "invalid")
    if data.set is not None:
        return CommandKind.SET, "set", data.set
    assert data.call is not None
    if not data.call.service:
        raise RegistryError("call: service is empty", "invalid")
    return CommandKind.CALL, data.call.service, data.call.params


@post(
    "/api/commands",
    status_code=201,
    opt=OPERATOR,
    responses={
        202: ResponseSpec(
            CommandBatch,
            description="many devices: the batch, kept; its commands go out paced",
            generate_examples=False,
        )
    },
)
async def send_command(
    access: Provided[Scope],
    commands: Provided[DeviceCommands],
    fan_out: Provided[FanOut],
    data: JSONBody[CommandRequest],
) -> Response[CommandRecord | CommandBatch]:
    """One device: 201 with its command once its dialect answered (or it is queued); many
    (a group, a product, a tag, a district): 202 with the batch, of the devices among them
    the principal sees."""
    problem = data.target.problem()
    if problem is not None:
        raise RegistryError(problem, "invalid")
    if data.origin not in ORIGINS:
        raise RegistryError(f"origin: {data.origin!r} (one of {', '.join(ORIGINS)})", "invalid")
    kind, service, params = _what(data)
    target = data.target
    reach = access.target(target)
    if target.product_key is not None and target.device_name is not None:
        await fan_out.devices(target)  # (404 for no such device)
        wait = data.wait if data.wait is not None or kind is CommandKind.SET else DEFAULT_WAIT
        device = DeviceRef(target.product_key, target.device_name)
        record = await commands.submit(device, kind, service, params, wait, data.ttl, data.origin)
        return Response(record, status_code=201)
    wait = DEFAULT_WAIT if data.wait is None else data.wait
    batch = await fan_out.send(
        target,
        kind,
        service,
        params,
        wait=wait,
        ttl=data.ttl,
        origin=data.origin,
        reach=reach,
    )
    return Response(batch, status_code=202)


@get("/api/commands", dependencies=PAGED)
async def list_commands(
    access: Provided[Scope],
    commands: Provided[DeviceCommands],
    paging: Paged,
    product_key: Annotated[str | None, QueryParameter(name="productKey")] = None,
    device_name: Annotated[str | None, QueryParameter(name="deviceName")] = None,
    command_state: Annotated[str | None, QueryParameter(name="state")] = None,
    origin: FromQuery[str | None] = None,
    batch: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
) -> Page[CommandRecord]:
    """Newest first (``-createdAt``; or ``deviceName``, ``state``, ``service``), narrowed by
    device, state, origin (``api``, ``cli``, ``rule:<id>``, ``scene:<id>``) and batch."""
    states = {s.value for s in CommandState}
    if command_state is not None and command_state not in states:
        listed = ", ".join(sorted(states))
        raise RegistryError(f"state: {command_state!r} (one of {listed})", "invalid")
    where = CommandFilter(
        product_key=product_key,
        device_name=device_name,
        state=None if command_state is None else CommandState(command_state),
        origin=origin,
        batch=batch,
        order=paging.order(list(COMMAND_ORDERS), default="-createdAt"),
        limit=paging.limit,
        offset=paging.offset,
        reach=access.reach,
    )
    items = await commands.list_commands(where)
    return paging.page(items, await commands.count_commands(where))


@get(COMMAND)
async def show_command(
    access: Provided[Scope], commands: Provided[DeviceCommands], command_id: FromPath[int]
) -> CommandRecord:
    return await _reached(commands, access, command_id)


async def _reached(commands: DeviceCommands, access: Scope, command_id: int) -> CommandRecord:
    """The command, 404 (as for none) when its device is out of the principal's reach."""
    record = await commands.get(command_id)
    access.device_of(record.product_key, record.device_name, f"command {command_id}")
    return record


@post(COMMAND + "/cancel", status_code=200, opt=OPERATOR)
async def cancel_command(
    access: Provided[Scope], commands: Provided[DeviceCommands], command_id: FromPath[int]
) -> CommandRecord:
    """Only a command waiting queued for its device (409 for one that went or ended)."""
    await _reached(commands, access, command_id)
    return await commands.cancel(command_id)


@get("/api/command-batches/{batch_id:int}")
async def show_batch(
    access: Provided[Scope],
    commands: Provided[DeviceCommands],
    fan_out: Provided[FanOut],
    batch_id: FromPath[int],
) -> CommandBatch:
    """The batch, with how many of its commands are in each state now; 404 (as for none)
    when none of its commands is to a device the principal sees. Only those commands are
    counted (``total`` too), and a target naming a group or product the principal does not
    see is shown empty (``{}``): a batch the admin token sent across tenants tells each
    tenant of its own devices alone."""
    if not await commands.count_commands(CommandFilter(batch=batch_id, reach=access.reach)):
        raise RegistryError(f"no command batch {batch_id}", "not_found")
    batch = await fan_out.batch(batch_id, access.reach)
    if not access.sees_target(batch.target):
        batch = msgspec.structs.replace(batch, target=Target())
    return batch


ROUTES = (send_command, list_commands, show_command, cancel_command, show_batch)
