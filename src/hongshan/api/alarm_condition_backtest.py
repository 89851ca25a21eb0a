"""``POST /api/alarm-conditions/backtest``: a product's alarm condition (its spec, or a stored
condition's id) run over a range of the history, raising nothing — each alarm it would have
raised, raised again and cleared, when, on which device, with which details — and, with
``against``, compared with another version on the same range.

The body: ``condition`` (a condition's spec as ``POST /api/products/{pk}/alarm-conditions``
takes it, or a condition's id), ``productKey`` (the product of a spec that names none),
``from`` and ``to`` (ms since the epoch, or ISO 8601 with its offset; a time without one is
UTC), ``against`` (optional, the same as ``condition``; a spec with no product is the other
version's), ``limit`` (changes listed, 1 to 10,000; every one is counted). A spec
is checked as the product's conditions are (400, naming what is wrong), an id that is no
condition's is 404; a range longer than a year, or backwards, is refused (400); a backtest
stops after 50 million values or two minutes (``complete: false``, ``stoppedAt``). One runs
at a time: a second waits for the first.
"""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.params import JSONBody

from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import Provided
from hongshan.api.rule_backtest import moment
from hongshan.api.scope import Scope
from hongshan.rules.alarm_conditions import AlarmConditionSpec, StoredAlarmCondition
from hongshan.services.alarms.condition_backtest import ConditionBacktest, ConditionBacktester
from hongshan.services.alarms.condition_book import AlarmConditionBook
from hongshan.services.rules.backtest import DEFAULT_LIMIT
from hongshan.things.model import RegistryError


class ConditionBacktestAsked(
    msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    condition: AlarmConditionSpec | int
    product_key: str = ""
    start: int | str = msgspec.field(name="from")
    end: int | str = msgspec.field(name="to")
    against: AlarmConditionSpec | int | None = None
    limit: int = DEFAULT_LIMIT


async def _conditions(
    book: AlarmConditionBook, access: Scope, data: ConditionBacktestAsked
) -> tuple[StoredAlarmCondition, StoredAlarmCondition | None]:
    """The stored conditions named by id (404 for another tenant's), then the specs checked:
    a spec with no product is ``productKey``'s, else the other version's (404 for another
    tenant's product)."""
    asked = [data.condition] if data.against is None else [data.condition, data.against]
    stored = [await book.get(given) if isinstance(given, int) else None for given in asked]
    for given, one in zip(asked, stored, strict=True):
        if one is not None:
            access.product_of(one.spec.product_key, f"alarm condition {given}")
    products = [data.product_key, *(one.spec.product_key for one in stored if one is not None)]
    for given in asked:
        if isinstance(given, AlarmConditionSpec) and given.product_key:
            products.append(given.product_key)
    product = next((pk for pk in products if pk), "")
    for index, given in enumerate(asked):
        if isinstance(given, AlarmConditionSpec):
            given.product_key = given.product_key or product
            if not given.product_key:
                raise RegistryError(
                    "a condition's spec needs its product: give productKey", "invalid"
                )
            access.product(given.product_key)
            book.check(given)
            stored[index] = StoredAlarmCondition(id=0, spec=given, created_at=0, updated_at=0)
    first, *other = stored
    assert first is not None and all(one is not None for one in other)
    return first, other[0] if other else None


@post("/api/alarm-conditions/backtest", status_code=200, opt=OPERATOR)
async def backtest_alarm_condition(
    access: Provided[Scope],
    alarm_conditions: Provided[AlarmConditionBook],
    condition_backtests: Provided[ConditionBacktester],
    data: JSONBody[ConditionBacktestAsked],
) -> ConditionBacktest:
    """Over the history of the condition's product, of the principal's tenant (a
    group-limited principal may not: it would replay devices outside its groups)."""
    access.unlimited("backtesting an alarm condition")
    condition, against = await _conditions(alarm_conditions, access, data)
    return await condition_backtests.run(
        condition,
        moment(data.start, "from"),
        moment(data.end, "to"),
        against=against,
        limit=data.limit,
    )


ROUTES = (backtest_alarm_condition,)
