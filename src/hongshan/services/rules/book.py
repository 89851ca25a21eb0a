"""``RuleBook``: the rules a town keeps — checked, stored, and handed to the engine."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from typing import Protocol

import msgspec

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.rules.compile import compile
from hongshan.rules.definition import (
    ActionSpec,
    AlarmAction,
    ForwardAction,
    InvokeAction,
    RuleSpec,
    SetAction,
    StoredRule,
    action_problem,
)
from hongshan.rules.sql import parse
from hongshan.rules.tree import Rule
from hongshan.services.rules.engine import RuleEngine
from hongshan.services.rules.running import ActionNeeds, Trace, build_rule, not_running
from hongshan.services.rules.sources import RuleSource
from hongshan.things.model import EVERYWHERE, Reach, RegistryError
from hongshan.things.tsl import ThingModel

MAX_RATE = 100_000.0  # fires a second a rule may ask for


def _settings(spec: RuleSpec) -> str:
    return msgspec.json.encode([spec.actions, spec.error_action]).decode()


class RuleStore(Protocol):
    """Where rules are kept (``store.registry.rules.RuleTable``)."""

    async def create(self, spec: RuleSpec, secret: str, tenant: str) -> StoredRule: ...

    async def list_rules(self, reach: Reach = EVERYWHERE) -> list[StoredRule]: ...

    async def get(self, rule_id: int) -> StoredRule: ...

    async def update(self, rule_id: int, spec: RuleSpec) -> StoredRule: ...

    async def set_enabled(
        self, rule_id: int, enabled: bool, *, shadow: bool | None = None
    ) -> StoredRule: ...

    async def delete(self, rule_id: int) -> None: ...


class Things(Protocol):
    """What a rule's check asks of the registry (``things.directory.Directory``)."""

    def product_view(self, product_key: str) -> object | None: ...

    def thing_model_of(self, product_key: str) -> ThingModel | None: ...

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    def tenant_of(self, product_key: str) -> str | None: ...


def target_problem(action: object, things: Things, tenant: str | None = None) -> str | None:
    """What is wrong with the device or product a set, invoke or alarm (of a rule or a
    scene of ``tenant``; None: the admin token's check, of any) names, against the registry
    — ``no product a1X`` (also for another tenant's), ``product a1X's thing model has no
    service 'Reboot'`` — or None. A group, district or tag is chosen when it runs, not
    here."""
    if not isinstance(action, SetAction | InvokeAction | AlarmAction):
        return None
    pk, dn = action.product_key, action.device_name
    if pk is None:
        return None
    if things.product_view(pk) is None or not _of(things, pk, tenant):
        return f"no product {pk}"
    if dn is not None and not things.device_known(pk, dn):
        return f"no device {dn} in product {pk}"
    model = things.thing_model_of(pk)
    if model is None:
        return None
    if isinstance(action, InvokeAction) and action.service not in model.service_map:
        return f"product {pk}'s thing model has no service {action.service!r}"
    if isinstance(action, SetAction):
        for identifier in action.values or {}:
            if identifier not in model.property_map:
                return f"product {pk}'s thing model has no property {identifier!r}"
    return None


def _of(things: Things, product_key: str, tenant: str | None) -> bool:
    return tenant is None or things.tenant_of(product_key) == tenant


class RuleBook:
    """Creates, changes, enables, disables and deletes rules: checks each (its text; what it
    reads against the thing model of the product its FROM names, through the source whose
    topics it names; its actions' settings, the devices they command and the rules whose
    input they are), keeps it in the
    registry, and has the engine run the enabled ones — all of them at start (``load``).
    Runs nothing itself (``RuleEngine``)."""

    def __init__(
        self,
        store: RuleStore,
        engine: RuleEngine,
        *,
        sources: Sequence[RuleSource],
        things: Things,
        needs: ActionNeeds,
    ) -> None:
        self._store = store
        self._engine = engine
        self._sources = tuple(sources)
        self._things = things
        self._needs = needs

    async def load(self) -> int:
        """Run every enabled rule kept; how many."""
        enabled = [rule for rule in await self._store.list_rules() if rule.enabled]
        for rule in enabled:
            self._engine.put(build_rule(rule, self._needs))
        return len(enabled)

    async def create(self, spec: RuleSpec, tenant: str = DEFAULT_TENANT) -> StoredRule:
        await self.check(spec, tenant=tenant)
        stored = await self._store.create(spec, secrets.token_hex(16), tenant)
        self._follow(stored)
        return stored

    async def update(self, rule_id: int, spec: RuleSpec) -> StoredRule:
        kept = await self._store.get(rule_id)
        await self.check(spec, rule_id=rule_id, tenant=kept.tenant)
        stored = await self._store.update(rule_id, spec)
        self._follow(stored)
        return stored

    async def set_enabled(
        self, rule_id: int, enabled: bool, *, shadow: bool | None = None
    ) -> StoredRule:
        """Enable or disable a rule; one enabled already keeps running (and its trace) unless
        ``shadow`` switches it between shadow (True: it records what it would do) and live
        (False: it acts), when it starts again as it now is."""
        running = self._engine.running(rule_id)
        stored = await self._store.set_enabled(rule_id, enabled, shadow=shadow)
        if not (enabled and running is not None and running.shadow == stored.shadow):
            self._follow(stored)
        return stored

    async def delete(self, rule_id: int) -> None:
        await self._store.delete(rule_id)
        self._engine.drop(rule_id)

    async def get(self, rule_id: int) -> StoredRule:
        return await self._store.get(rule_id)

    async def list_rules(self, reach: Reach = EVERYWHERE) -> list[StoredRule]:
        return await self._store.list_rules(reach)

    async def trace(self, rule_id: int) -> Trace:
        """The rule's counters and its last runs, non-runs and failures since it was last
        (re)started; a disabled rule's are empty."""
        await self._store.get(rule_id)  # (none: not found)
        running = self._engine.running(rule_id)
        return not_running(rule_id) if running is None else running.trace()

    def _follow(self, stored: StoredRule) -> None:
        if stored.enabled:
            self._engine.put(build_rule(stored, self._needs))
        else:
            self._engine.drop(stored.id)

    # -- checks ----------------------------------------------------------------------------

    async def check(
        self,
        spec: RuleSpec,
        *,
        rule_id: int | None = None,
        alongside: Collection[str] = (),
        tenant: str | None = None,
    ) -> None:
        """Refuse (400) a rule that cannot run as written: ``RuleSyntaxError``,
        ``RuleRefused`` (a property its product's thing model lacks), or ``RegistryError``
        naming what else is wrong. ``rule_id``: the rule it would change (its old name is no
        other rule's); ``alongside``: names of rules that will be created with it (an
        import's), which its actions may hand their output to; ``tenant``: the rule's, whose
        products alone its FROM and actions may name (None: any, the admin token's)."""
        if not spec.name.strip() or len(spec.name) > 64:
            raise RegistryError("a rule's name is 1 to 64 characters", "invalid")
        if not 0 < spec.max_per_second <= MAX_RATE:
            raise RegistryError(
                f"maxPerSecond {spec.max_per_second:g}: more than 0, at most {MAX_RATE:g}",
                "invalid",
            )
        if "\x00" in spec.name or "\x00" in spec.sql or "\\u0000" in _settings(spec):
            raise RegistryError("a rule's text and settings hold no U+0000", "invalid")
        rule = parse(spec.sql)
        compile(rule)
        self._check_reads(rule, tenant)
        for action in spec.actions:
            self._check_action(action, tenant)
        if spec.error_action is not None:
            self._check_action(spec.error_action, tenant)
        await self._check_targets(spec, rule_id, alongside, tenant)

    async def _check_targets(
        self, spec: RuleSpec, rule_id: int | None, alongside: Collection[str], tenant: str | None
    ) -> None:
        """A rule's input its actions hand their output to is another rule's of its tenant,
        one that exists (it may be disabled: the action fails while it is)."""
        every = [*spec.actions, *([spec.error_action] if spec.error_action else [])]
        targets = [action.rule for action in every if isinstance(action, ForwardAction)]
        if not targets:
            return
        reach = Reach(tenant=tenant)
        names = {rule.name for rule in await self._store.list_rules(reach) if rule.id != rule_id}
        for target in targets:
            if target == spec.name:
                raise RegistryError(
                    f"rule: {target!r} is this rule: a rule hands its output to another", "invalid"
                )
            if target not in names and target not in alongside:
                raise RegistryError(f"rule: no rule named {target!r}", "invalid")

    def _check_reads(self, rule: Rule, tenant: str | None) -> None:
        for source in self._sources:
            product = source.product_in(rule.topic_filter)
            if product is None:
                continue
            if self._things.product_view(product) is None or not _of(self._things, product, tenant):
                raise RegistryError(
                    f"the rule's FROM names product {product}, which does not exist", "invalid"
                )
            model = self._things.thing_model_of(product)
            if model is not None:
                source.check(rule, model)

    def _check_action(self, action: ActionSpec, tenant: str | None) -> None:
        problem = action_problem(action)
        if problem is not None:
            raise RegistryError(problem, "invalid")
        problem = target_problem(action, self._things, tenant)
        if problem is not None:
            raise RegistryError(f"{action.kind}: {problem}", "invalid")
