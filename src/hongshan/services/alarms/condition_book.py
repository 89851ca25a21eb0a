"""``AlarmConditionBook``: products' alarm conditions — checked, stored, and handed to the
engine that runs them."""

from __future__ import annotations

from typing import Protocol

from hongshan.rules.alarm_conditions import (
    AlarmConditionSpec,
    StoredAlarmCondition,
    condition_problem,
    named_conditions,
)
from hongshan.services.alarms.condition_trace import ConditionTrace, not_running
from hongshan.services.alarms.conditions import AlarmConditions
from hongshan.things.model import RegistryError
from hongshan.things.tsl import ThingModel
from hongshan.things.tsl_types import (
    ArrayType,
    BoolType,
    DataType,
    EnumType,
    NumberType,
    StructType,
    TextType,
)


class AlarmConditionStore(Protocol):
    """Where the conditions are kept (``store.registry.alarm_conditions``)."""

    async def create(self, spec: AlarmConditionSpec) -> StoredAlarmCondition: ...

    async def list_conditions(
        self, product_key: str | None = None
    ) -> list[StoredAlarmCondition]: ...

    async def get(self, condition_id: int) -> StoredAlarmCondition: ...

    async def update(self, condition_id: int, spec: AlarmConditionSpec) -> StoredAlarmCondition: ...

    async def delete(self, condition_id: int) -> None: ...


class Things(Protocol):
    """What a condition's check asks of the registry (``things.directory.Directory``)."""

    def product_view(self, product_key: str) -> object | None: ...

    def thing_model_of(self, product_key: str) -> ThingModel | None: ...


class AlarmConditionBook:
    """Creates, changes, lists and deletes products' alarm conditions: checks each (in itself,
    ``condition_problem``; its product and the properties it reads against the product's thing
    model), keeps it in the registry and has the engine run the enabled ones at once — all of
    them at start (``load``). Decides and raises nothing itself (``AlarmConditions``)."""

    def __init__(
        self, store: AlarmConditionStore, engine: AlarmConditions, *, things: Things
    ) -> None:
        self._store = store
        self._engine = engine
        self._things = things

    async def load(self) -> int:
        """Run every enabled condition kept; how many run."""
        enabled = [c for c in await self._store.list_conditions() if c.spec.enabled]
        for stored in enabled:
            self._engine.put(stored)
        return len(enabled)

    async def create(self, spec: AlarmConditionSpec) -> StoredAlarmCondition:
        self.check(spec)
        stored = await self._store.create(spec)
        self._follow(stored)
        return stored

    async def update(self, condition_id: int, spec: AlarmConditionSpec) -> StoredAlarmCondition:
        """The whole condition again; its product stays (a product's conditions are its
        own): a ``productKey`` given must be the one it has."""
        before = await self._store.get(condition_id)
        if spec.product_key and spec.product_key != before.spec.product_key:
            raise RegistryError(
                f"alarm condition {condition_id} is product {before.spec.product_key}'s:"
                f" its productKey cannot become {spec.product_key}",
                "invalid",
            )
        spec.product_key = before.spec.product_key
        self.check(spec)
        stored = await self._store.update(condition_id, spec)
        self._follow(stored)
        return stored

    async def delete(self, condition_id: int) -> None:
        await self._store.delete(condition_id)
        self._engine.drop(condition_id)

    async def get(self, condition_id: int) -> StoredAlarmCondition:
        return await self._store.get(condition_id)

    async def trace(self, condition_id: int) -> ConditionTrace:
        """The condition's counters and last decisions since it was last (re)started."""
        await self._store.get(condition_id)  # (none: not found)
        running = self._engine.running(condition_id)
        return not_running(condition_id) if running is None else running.trace.trace(condition_id)

    async def list_conditions(self, product_key: str) -> list[StoredAlarmCondition]:
        if self._things.product_view(product_key) is None:
            raise RegistryError(f"no product {product_key}", "not_found")
        return await self._store.list_conditions(product_key)

    def _follow(self, stored: StoredAlarmCondition) -> None:
        if stored.spec.enabled:
            self._engine.put(stored)
        else:
            self._engine.drop(stored.id)

    def check(self, spec: AlarmConditionSpec) -> None:
        """Refuse (400) a condition that cannot run as written, naming what is wrong."""
        problem = condition_problem(spec)
        if problem is not None:
            raise RegistryError(problem, "invalid")
        pk = spec.product_key
        if self._things.product_view(pk) is None:
            raise RegistryError(f"no product {pk}", "invalid")
        model = self._things.thing_model_of(pk)
        for where, condition in named_conditions(spec):
            for predicate in condition.predicates:
                found = None if model is None else model.property_map.get(predicate.property)
                if found is None:
                    raise RegistryError(
                        f"{where}: product {pk}'s thing model has no property"
                        f" {predicate.property!r}",
                        "invalid",
                    )
                problem = _mismatch(found.data_type, predicate.value)
                if problem is not None:
                    raise RegistryError(f"{where}: {predicate.property} {problem}", "invalid")


def _mismatch(data_type: DataType, value: object) -> str | None:
    """Why a property of ``data_type`` can never compare with ``value`` (a threshold, or a
    tag's default), or None."""
    if isinstance(data_type, StructType | ArrayType):
        return "is a struct or an array: give a property with one value"
    if value is None:
        return None
    text = isinstance(value, str)
    if isinstance(data_type, NumberType | EnumType | BoolType) and text:
        return f"is a number: {value!r} never compares with it"
    if isinstance(data_type, TextType) and not text:
        return f"is text: {value!r} never compares with it"
    return None
