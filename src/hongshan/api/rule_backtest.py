"""``POST /api/rules/backtest``: a rule (its spec, or a stored rule's id) run over a range of
the history, doing nothing — when it would have fired and what it would have done — and,
with ``against``, compared with another version on the same range.

The body: ``rule`` (a rule's spec as ``POST /api/rules`` takes it, or a rule's id), ``from``
and ``to`` (ms since the epoch, or ISO 8601 with its offset; a time without one is UTC),
``against`` (optional, the same as ``rule``), ``limit`` (would-be fires listed, 1 to 10,000;
every fire is counted), ``device`` (optional ``PK/DN``: only that device's history). A range
longer than a year, or backwards, is refused (400); a backtest stops after 50 million values or two
minutes (``complete: false``, ``stoppedAt``: where to go on from). One runs at a time: a
second waits for the first.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import post
from litestar.params import JSONBody

from hongshan.api.auth import OPERATOR
from hongshan.api.dependencies import Provided
from hongshan.api.scope import Scope
from hongshan.rules.definition import RuleSpec, StoredRule
from hongshan.services.rules.backtest import DEFAULT_LIMIT, Backtest, Backtester
from hongshan.services.rules.book import RuleBook
from hongshan.store.history.model import HistoryProblem


class BacktestAsked(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    rule: RuleSpec | int
    start: int | str = msgspec.field(name="from")
    end: int | str = msgspec.field(name="to")
    against: RuleSpec | int | None = None
    limit: int = DEFAULT_LIMIT
    device: str | None = None


def moment(value: int | str, name: str) -> int:
    """``from`` or ``to`` in ms since the epoch: a number as it is, a text as ISO 8601 (UTC
    where it names no offset)."""
    if isinstance(value, int):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise HistoryProblem(
            f"{name} {value!r} is no time: ms since the epoch or ISO 8601 "
            "(2026-12-01T08:00:00+08:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def _spec(stored: StoredRule) -> RuleSpec:
    return RuleSpec(
        name=stored.name,
        sql=stored.sql,
        actions=stored.actions,
        error_action=stored.error_action,
        enabled=stored.enabled,
        max_per_second=stored.max_per_second,
        shadow=stored.shadow,
    )


async def _rule(rules: RuleBook, access: Scope, given: RuleSpec | int) -> RuleSpec:
    if isinstance(given, int):
        stored = await rules.get(given)
        access.owned(stored.tenant, f"rule {given}")
        return _spec(stored)
    await rules.check(given, tenant=access.principal.tenant)
    return given


@post("/api/rules/backtest", status_code=200, opt=OPERATOR)
async def backtest_rule(
    access: Provided[Scope],
    rules: Provided[RuleBook],
    backtests: Provided[Backtester],
    data: JSONBody[BacktestAsked],
) -> Backtest:
    """Over the history of the devices the principal sees (a group-limited one may not: it
    would replay devices outside its groups)."""
    access.unlimited("backtesting a rule")
    rule = await _rule(rules, access, data.rule)
    against = None if data.against is None else await _rule(rules, access, data.against)
    device = None
    if data.device is not None:
        pk, found, dn = data.device.partition("/")
        if not (found and pk and dn):
            raise HistoryProblem(f"device {data.device!r}: write PRODUCTKEY/DEVICENAME")
        access.device_of(pk, dn, f"device {dn} in product {pk}")  # (none: nothing replayed)
        device = (pk, dn)
    return await backtests.run(
        rule,
        moment(data.start, "from"),
        moment(data.end, "to"),
        against=against,
        limit=data.limit,
        device=device,
        sees=access.sees,
    )


ROUTES = (backtest_rule,)
