"""A product's alarm conditions: ``GET/POST /api/products/{pk}/alarm-conditions``,
``GET/PUT/DELETE /api/alarm-conditions/{id}`` (``rules.alarm_conditions`` says what one is),
``GET /api/alarm-conditions/{id}/trace`` (its counters and last decisions).
A condition that names no such product or property, or cannot run as written, is refused
(400) naming what is wrong; a second one of a product's alarm type, 409. A change runs at
once."""

from __future__ import annotations

import msgspec
from litestar import delete, get, post, put
from litestar.params import FromPath, JSONBody

from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.rules.alarm_conditions import (
    AlarmConditionSpec,
    Condition,
    CreateCondition,
    StoredAlarmCondition,
)
from hongshan.services.alarms.condition_book import AlarmConditionBook
from hongshan.services.alarms.condition_trace import ConditionTrace
from hongshan.things.model import RegistryError

CONDITION = "/api/alarm-conditions/{condition_id:int}"


class AlarmConditionView(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    product_key: str
    type: str
    description: str
    enabled: bool
    create: list[CreateCondition]
    clear: Condition | None
    created_at: int
    updated_at: int


def _view(stored: StoredAlarmCondition) -> AlarmConditionView:
    spec = stored.spec
    return AlarmConditionView(
        id=stored.id,
        product_key=spec.product_key,
        type=spec.type,
        description=spec.description,
        enabled=spec.enabled,
        create=spec.create,
        clear=spec.clear,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


@post("/api/products/{pk:str}/alarm-conditions", status_code=201, opt=OPERATOR)
async def create_alarm_condition(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    pk: FromPath[str],
    data: JSONBody[AlarmConditionSpec],
) -> AlarmConditionView:
    access.product(pk)
    access.unlimited("creating an alarm condition")
    if data.product_key and data.product_key != pk:
        raise RegistryError(
            f"the body's productKey {data.product_key} is not the path's {pk}", "invalid"
        )
    data.product_key = pk
    return _view(await alarm_conditions.create(data))


@get("/api/products/{pk:str}/alarm-conditions", dependencies=PAGED)
async def list_alarm_conditions(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    pk: FromPath[str],
    paging: Paged,
) -> Page[AlarmConditionView]:
    """Sorted by ``id`` (or ``type``, ``createdAt``, ``updatedAt``); ``q`` in the type."""
    access.product(pk)
    return paging.in_memory(
        [_view(stored) for stored in await alarm_conditions.list_conditions(pk)],
        {
            "id": lambda c: c.id,
            "type": lambda c: c.type,
            "createdAt": lambda c: c.created_at,
            "updatedAt": lambda c: c.updated_at,
        },
        default="id",
        text=lambda condition: condition.type,
    )


async def _reached(
    book: AlarmConditionBook, access: Scope, condition_id: int
) -> StoredAlarmCondition:
    """The condition, 404 (as for none) when its product is another tenant's."""
    stored = await book.get(condition_id)
    access.product_of(stored.spec.product_key, f"alarm condition {condition_id}")
    return stored


@get(CONDITION)
async def show_alarm_condition(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    condition_id: FromPath[int],
) -> AlarmConditionView:
    return _view(await _reached(alarm_conditions, access, condition_id))


@put(CONDITION, opt=OPERATOR)
async def change_alarm_condition(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    condition_id: FromPath[int],
    data: JSONBody[AlarmConditionSpec],
) -> AlarmConditionView:
    """The whole condition again (its product stays); its state starts again."""
    await _reached(alarm_conditions, access, condition_id)
    access.unlimited("changing an alarm condition")
    return _view(await alarm_conditions.update(condition_id, data))


@get(CONDITION + "/trace")
async def alarm_condition_trace(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    condition_id: FromPath[int],
) -> ConditionTrace:
    """Its counters and last decisions (raised, repeated, cleared, waiting until a duration's
    end, broken) since it was last (re)started; empty when it is disabled."""
    await _reached(alarm_conditions, access, condition_id)
    return await alarm_conditions.trace(condition_id)


@delete(CONDITION, status_code=204, opt=OPERATOR)
async def delete_alarm_condition(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    condition_id: FromPath[int],
) -> None:
    await _reached(alarm_conditions, access, condition_id)
    access.unlimited("deleting an alarm condition")
    await alarm_conditions.delete(condition_id)


ROUTES = (
    create_alarm_condition,
    list_alarm_conditions,
    show_alarm_condition,
    change_alarm_condition,
    alarm_condition_trace,
    delete_alarm_condition,
)
