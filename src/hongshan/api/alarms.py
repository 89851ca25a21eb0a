"""``/api/alarms``: list (filtered, paged), show, raise (an operator's manual alarm),
acknowledge, clear, assign and annotate alarms; ``/api/alarm-notifications``: the routes their
changes are sent to (create, list, show, change, delete). An acknowledgement or a clearing the
alarm's status does not allow is 409 naming the status; a device that does not exist, an
empty type or a policy that cannot work is 400 naming it."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from hongshan.alarms.model import (
    Alarm,
    AlarmFilter,
    Escalation,
    Originator,
    Severity,
    StatusFilter,
)
from hongshan.alarms.routes import RouteSpec, StoredRoute
from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.identity.principals import Principal
from hongshan.messages import DeviceRef
from hongshan.services.alarms.service import AlarmService
from hongshan.store.registry.alarms import ALARM_ORDERS
from hongshan.things.model import RegistryError

ALARM = "/api/alarms/{alarm_id:int}"
ROUTE = "/api/alarm-notifications/{route_id:int}"
UNNAMED = "api"  # who did it, when the admin token does not say


class NewAlarm(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """An operator's manual alarm (its originator is ``api``, with ``by``)."""

    product_key: str
    device_name: str
    type: str
    severity: Severity = "major"
    details: dict[str, Any] = {}
    escalation: Escalation | None = None
    by: str | None = None


class Operator(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Who acknowledges or clears (their name, kept on the alarm): ``by`` (``_who``)."""

    by: str | None = None


class Assignment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    assignee: str | None  # None: to nobody
    by: str | None = None


class NewNote(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str
    by: str | None = None


def _who(principal: Principal, by: str | None) -> str:
    """Who did it, as kept on the alarm: a user's (or key's) own name, which ``by`` may repeat
    but not change (400: nobody signs for another); the admin token, the CLI's, names whom it
    acts for (``--by``), else ``api``."""
    if principal.kind == "token":
        return by or UNNAMED
    if by is not None and by != principal.name:
        raise RegistryError(
            f"by: {by!r} is not {principal.name!r}, who sent this; leave it out", "invalid"
        )
    return principal.name


class RouteView(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A route as the API shows it; ``secret`` (the key of its webhooks' signatures) only
    when it is created."""

    id: int
    name: str
    kind: str
    url: str | None = None
    to: list[str] = []
    min_severity: Severity
    types: list[str]
    changes: list[str]
    retries: int
    backoff: float
    sent: int
    failed: int
    last_error: str | None = None
    last_error_at: int | None = None
    created_at: int
    secret: str | None = None


def _route(route: StoredRoute, *, with_secret: bool = False) -> RouteView:
    return RouteView(
        id=route.id,
        name=route.name,
        kind=route.kind,
        url=route.url,
        to=route.to,
        min_severity=route.min_severity,
        types=route.types,
        changes=list(route.changes),
        retries=route.retries,
        backoff=route.backoff,
        sent=route.sent,
        failed=route.failed,
        last_error=route.last_error,
        last_error_at=route.last_error_at,
        created_at=route.created_at,
        secret=route.secret if with_secret else None,
    )


async def _reached(alarms: AlarmService, access: Scope, alarm_id: int) -> Alarm:
    """The alarm, 404 (as for none) when its device is out of the principal's reach."""
    alarm = await alarms.get(alarm_id)
    access.device_of(alarm.product_key, alarm.device_name, f"alarm {alarm_id}")
    return alarm


async def _route_reached(alarms: AlarmService, access: Scope, route_id: int) -> StoredRoute:
    """The route, 404 (as for none) when it is another tenant's."""
    route = await alarms.notifier.get(route_id)
    access.owned(route.tenant, f"route {route_id}")
    return route


@get("/api/alarms", dependencies=PAGED)
async def list_alarms(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    paging: Paged,
    status: Annotated[
        StatusFilter | None,
        QueryParameter(description="one status, or ACTIVE, CLEARED, UNACK, ACK"),
    ] = None,
    severity: FromQuery[Severity | None] = None,
    min_severity: Annotated[Severity | None, QueryParameter(name="minSeverity")] = None,
    product_key: Annotated[str | None, QueryParameter(name="productKey")] = None,
    device_name: Annotated[str | None, QueryParameter(name="deviceName")] = None,
    alarm_type: Annotated[str | None, QueryParameter(name="type")] = None,
    assignee: FromQuery[str | None] = None,
) -> Page[Alarm]:
    """Alarms, the newest raise first (``-lastRaisedAt``; or ``firstRaisedAt``,
    ``updatedAt``, ``severity``, ``status``, ``type``, ``deviceName``); ``q`` in the type."""
    where = AlarmFilter(
        status=status,
        severity=severity,
        min_severity=min_severity,
        product_key=product_key,
        device_name=device_name,
        type=alarm_type,
        assignee=assignee,
        text=paging.q,
        order=paging.order(list(ALARM_ORDERS), default="-lastRaisedAt"),
        limit=paging.limit,
        offset=paging.offset,
        reach=access.reach,
    )
    items, total = await alarms.list_alarms(where)
    return paging.page(items, total)


@post("/api/alarms", status_code=201, opt=OPERATOR)
async def raise_alarm(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    principal: Provided[Principal],
    data: JSONBody[NewAlarm],
) -> Alarm:
    """Raise an alarm by hand: a new one, or a repeat of the device's open one of that type."""
    access.named_device(data.product_key, data.device_name)
    return await alarms.raise_alarm(
        DeviceRef(data.product_key, data.device_name),
        data.type,
        data.severity,
        data.details,
        Originator(kind="api", id=_who(principal, data.by)),
        escalation=data.escalation,
    )


@get(ALARM)
async def show_alarm(
    access: Provided[Scope], alarms: Provided[AlarmService], alarm_id: FromPath[int]
) -> Alarm:
    return await _reached(alarms, access, alarm_id)


@post(ALARM + "/ack", status_code=200, opt=OPERATOR)
async def acknowledge_alarm(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    principal: Provided[Principal],
    alarm_id: FromPath[int],
    data: JSONBody[Operator | None] = None,
) -> Alarm:
    await _reached(alarms, access, alarm_id)
    return await alarms.acknowledge(alarm_id, by=_who(principal, (data or Operator()).by))


@post(ALARM + "/clear", status_code=200, opt=OPERATOR)
async def clear_alarm(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    principal: Provided[Principal],
    alarm_id: FromPath[int],
    data: JSONBody[Operator | None] = None,
) -> Alarm:
    await _reached(alarms, access, alarm_id)
    return await alarms.clear(alarm_id, by=_who(principal, (data or Operator()).by))


@post(ALARM + "/assign", status_code=200, opt=OPERATOR)
async def assign_alarm(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    principal: Provided[Principal],
    alarm_id: FromPath[int],
    data: JSONBody[Assignment],
) -> Alarm:
    await _reached(alarms, access, alarm_id)
    return await alarms.assign(alarm_id, data.assignee, by=_who(principal, data.by))


@post(ALARM + "/notes", status_code=201, opt=OPERATOR)
async def add_note(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    principal: Provided[Principal],
    alarm_id: FromPath[int],
    data: JSONBody[NewNote],
) -> Alarm:
    await _reached(alarms, access, alarm_id)
    return await alarms.add_note(alarm_id, data.text, by=_who(principal, data.by))


@post("/api/alarm-notifications", status_code=201)
async def create_route(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    data: JSONBody[RouteSpec],
    tenant: FromQuery[str | None] = None,
) -> RouteView:
    """In the principal's tenant (the admin token's: ``?tenant=``, else ``default``): it
    hears only the alarms of that tenant's devices."""
    made = await alarms.notifier.create(data, access.tenant_for_new(tenant))
    return _route(made, with_secret=True)


@get("/api/alarm-notifications", dependencies=PAGED)
async def list_routes(
    access: Provided[Scope], alarms: Provided[AlarmService], paging: Paged
) -> Page[RouteView]:
    """The tenant's; sorted by ``id`` (or ``name``, ``createdAt``); ``q`` in the name."""
    return paging.in_memory(
        [_route(route) for route in await alarms.notifier.list_routes(access.reach)],
        {"id": lambda r: r.id, "name": lambda r: r.name, "createdAt": lambda r: r.created_at},
        default="id",
        text=lambda route: route.name,
    )


@get(ROUTE)
async def show_route(
    access: Provided[Scope], alarms: Provided[AlarmService], route_id: FromPath[int]
) -> RouteView:
    return _route(await _route_reached(alarms, access, route_id))


@put(ROUTE)
async def change_route(
    access: Provided[Scope],
    alarms: Provided[AlarmService],
    route_id: FromPath[int],
    data: JSONBody[RouteSpec],
) -> RouteView:
    """The whole route again (its id, secret and counts stay)."""
    await _route_reached(alarms, access, route_id)
    return _route(await alarms.notifier.update(route_id, data))


@delete(ROUTE, status_code=204)
async def delete_route(
    access: Provided[Scope], alarms: Provided[AlarmService], route_id: FromPath[int]
) -> None:
    await _route_reached(alarms, access, route_id)
    await alarms.notifier.delete(route_id)


ROUTES = (
    list_alarms,
    raise_alarm,
    show_alarm,
    acknowledge_alarm,
    clear_alarm,
    assign_alarm,
    add_note,
    create_route,
    list_routes,
    show_route,
    change_route,
    delete_route,
)
