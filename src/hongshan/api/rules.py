"""``/api/rules``: create, check, list, show, change, enable (live or shadow), disable and
delete rules, and a rule's trace (its counters, last runs — a shadow rule's with what it
would have done —, last non-runs with the condition that stopped each, and last failed
actions). A rule is refused (400) when its text is no rule (the line, column and what
was expected), when it reads a property its product's thing model lacks (named), or when an
action cannot be done as set (named: a device or a rule that does not exist, a rule handing
its output to itself)."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from hongshan.api.auth import OPERATOR, require
from hongshan.api.dependencies import Provided
from hongshan.api.paging import BY_NAME_AND_TIMES, PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.identity.principals import Principal, Role
from hongshan.rules.definition import ActionSpec, RuleSpec, StoredRule
from hongshan.services.rules.book import RuleBook
from hongshan.services.rules.running import Trace

RULE = "/api/rules/{rule_id:int}"
RunMode = Literal["live", "shadow"]


class RuleView(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A rule as the API shows it; ``secret`` (the key of its webhooks' signatures) only when
    it is created, or asked for (``?secret=true``)."""

    id: int
    name: str
    sql: str
    actions: list[ActionSpec]
    error_action: ActionSpec | None
    enabled: bool
    max_per_second: float
    shadow: bool
    created_at: int
    updated_at: int
    tenant: str  # (a name is unique within its tenant)
    secret: str | None = None


def _view(rule: StoredRule, *, with_secret: bool = False) -> RuleView:
    return RuleView(
        id=rule.id,
        name=rule.name,
        sql=rule.sql,
        actions=rule.actions,
        error_action=rule.error_action,
        enabled=rule.enabled,
        max_per_second=rule.max_per_second,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
        shadow=rule.shadow,
        tenant=rule.tenant,
        secret=rule.secret if with_secret else None,
    )


@post("/api/rules", status_code=201, opt=OPERATOR)
async def create_rule(
    access: Provided[Scope],
    rules: Provided[RuleBook],
    data: JSONBody[RuleSpec],
    tenant: FromQuery[str | None] = None,
) -> RuleView:
    """In the principal's tenant (the admin token's: ``?tenant=``, else ``default``): its
    FROM and actions may name that tenant's products and devices only."""
    access.unlimited("creating a rule")
    made = await rules.create(data, access.tenant_for_new(tenant))
    return _view(made, with_secret=True)


async def _reached(rules: RuleBook, access: Scope, rule_id: int) -> StoredRule:
    """The rule, 404 (as for none) when it is another tenant's."""
    rule = await rules.get(rule_id)
    access.owned(rule.tenant, f"rule {rule_id}")
    return rule


async def _changeable(rules: RuleBook, access: Scope, rule_id: int) -> StoredRule:
    """The rule, for a change: 404 as ``_reached``, then 403 for a group-limited principal."""
    rule = await _reached(rules, access, rule_id)
    access.unlimited("changing a rule")
    return rule


@post("/api/rules/check", status_code=200, opt=OPERATOR)
async def check_rule(
    access: Provided[Scope],
    rules: Provided[RuleBook],
    data: JSONBody[RuleSpec],
    alongside: FromQuery[list[str] | None] = None,
) -> dict[str, bool]:
    """Whether the rule would be accepted as it is (a 400 naming what is wrong if not);
    nothing is stored (``rule import`` checks a whole file before it changes anything:
    ``?alongside=NAME``, repeated, names the rules it will create, which a rule's actions may
    hand their output to)."""
    await rules.check(data, alongside=alongside or (), tenant=access.principal.tenant)
    return {"ok": True}


@get("/api/rules", dependencies=PAGED)
async def list_rules(
    access: Provided[Scope], rules: Provided[RuleBook], paging: Paged
) -> Page[RuleView]:
    """The tenant's; sorted by ``id`` (or ``name``, ``createdAt``, ``updatedAt``); ``q`` in
    the name."""
    return paging.in_memory(
        [_view(rule) for rule in await rules.list_rules(access.reach)],
        BY_NAME_AND_TIMES,
        default="id",
        text=lambda rule: rule.name,
    )


@get(RULE)
async def show_rule(
    access: Provided[Scope],
    rules: Provided[RuleBook],
    principal: Provided[Principal],
    rule_id: FromPath[int],
    secret: FromQuery[bool] = False,
) -> RuleView:
    if secret:
        require(principal, Role.OPERATOR, "the rule's secret")
    return _view(await _reached(rules, access, rule_id), with_secret=secret)


@put(RULE, opt=OPERATOR)
async def change_rule(
    access: Provided[Scope],
    rules: Provided[RuleBook],
    rule_id: FromPath[int],
    data: JSONBody[RuleSpec],
) -> RuleView:
    """The whole rule again (its id and secret stay); its counters and trace start again."""
    await _changeable(rules, access, rule_id)
    return _view(await rules.update(rule_id, data))


@post(RULE + "/enable", status_code=200, opt=OPERATOR)
async def enable_rule(
    access: Provided[Scope],
    rules: Provided[RuleBook],
    rule_id: FromPath[int],
    mode: FromQuery[RunMode | None] = None,
) -> RuleView:
    """Run a rule; ``?mode=live`` makes it act, ``?mode=shadow`` makes it only record what it
    would do (no mode: as it was)."""
    await _changeable(rules, access, rule_id)
    shadow = None if mode is None else mode == "shadow"
    return _view(await rules.set_enabled(rule_id, True, shadow=shadow))


@post(RULE + "/disable", status_code=200, opt=OPERATOR)
async def disable_rule(
    access: Provided[Scope], rules: Provided[RuleBook], rule_id: FromPath[int]
) -> RuleView:
    await _changeable(rules, access, rule_id)
    return _view(await rules.set_enabled(rule_id, False))


@delete(RULE, status_code=204, opt=OPERATOR)
async def delete_rule(
    access: Provided[Scope], rules: Provided[RuleBook], rule_id: FromPath[int]
) -> None:
    await _changeable(rules, access, rule_id)
    await rules.delete(rule_id)


@get(RULE + "/trace")
async def rule_trace(
    access: Provided[Scope], rules: Provided[RuleBook], rule_id: FromPath[int]
) -> Trace:
    await _reached(rules, access, rule_id)
    return await rules.trace(rule_id)


ROUTES = (
    create_rule,
    check_rule,
    list_rules,
    show_rule,
    change_rule,
    enable_rule,
    disable_rule,
    delete_rule,
    rule_trace,
)
