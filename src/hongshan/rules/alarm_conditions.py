"""A product's alarm conditions (ThingsBoard's device-profile alarm rules) as data, and the
pure deciding of them: told a device's values, its tags and the time (ms, the caller's
clock), ``DeviceConditions`` answers whether to raise the alarm (at which severity, with the
values that made it), clear it, or set or give up a timer. No IO and no clock of its own:
``services.alarms.conditions`` drives it live; a backtest can drive it on the recorded clock.

One condition of a product, for one alarm type::

    productKey: a1Oximeter
    type: LowSpO2
    create:                                  # checked from the most severe down
      - severity: critical
        predicates: [{property: SpO2, op: "<", value: 85}]
      - severity: major
        predicates: [{property: SpO2, op: "<", tag: spo2_min, value: 92}]
        kind: duration
        forMs: 60000
    clear:
      predicates: [{property: SpO2, op: ">=", value: 95}]
      kind: repeating
      count: 3
      windowMs: 120000

A condition holds when every one of its predicates does: ``property op threshold``, the
threshold ``value`` — or, with ``tag``, that tag of the device, else of the first of its
groups (by name) that has it, else ``value`` as the default (none: the predicate does not
hold). A post that carries one of the condition's properties is checked with the device's
latest values of the others. Its ``kind``:

- ``simple``: it fires when the condition starts holding (once per stretch of holding);
- ``duration``: once it has held ``forMs`` with no value breaking it (``Threshold``, held);
- ``repeating``: on the ``count``-th value in a row for which it holds, the first and the
  last within ``windowMs`` (0: any time apart); a value that breaks it starts the count again
  (``Repeated``).

When create conditions fire on one value, the most severe raises (or raises again) the alarm
at its severity; the clear condition clears the device's open alarm of the type — unless a
create condition holds on that same value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from hongshan.alarms.model import Severity, rank
from hongshan.rules.scene import Op, Scalar, compares
from hongshan.rules.scene_triggers import Next, Repeated, Threshold

Kind = Literal["simple", "duration", "repeating"]

MAX_TYPE = 128
MAX_CREATE = 5  # (one per severity)
MAX_PREDICATES = 10
MAX_HOLD_MS = 7 * 86_400_000
MAX_COUNT = 1000
CLEAR = -1  # the clear condition's slot; the create conditions' are their index


class Predicate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``property op threshold``; the threshold is ``value``, or the device's (its groups')
    ``tag``, with ``value`` the default when none has it."""

    property: str
    op: Op
    value: Scalar | None = None
    tag: str | None = None


class Condition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    predicates: list[Predicate]
    kind: Kind = "simple"
    for_ms: int = 0  # duration
    count: int = 0  # repeating
    window_ms: int = 0  # repeating; 0: any time apart


class CreateCondition(Condition, frozen=True, kw_only=True, rename="camel"):
    severity: Severity


class AlarmConditionSpec(msgspec.Struct, kw_only=True, rename="camel"):
    """A product's alarm condition as written (the registry keeps it whole)."""

    product_key: str = ""  # (from the path when posted to a product)
    type: str
    create: list[CreateCondition]
    clear: Condition | None = None
    description: str = ""
    enabled: bool = True


class StoredAlarmCondition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: int
    spec: AlarmConditionSpec
    created_at: int
    updated_at: int


class Tags(msgspec.Struct, frozen=True, kw_only=True):
    """Where a device's thresholds may come from: its own tags, then its groups' (in order)."""

    device: Mapping[str, str] = {}
    groups: Sequence[tuple[str, Mapping[str, str]]] = ()


NO_TAGS = Tags()


def condition_problem(spec: AlarmConditionSpec) -> str | None:
    """What is wrong with a condition in itself, in words, or None; the product and the
    properties it names are checked against the registry by ``services.alarms``."""
    if not spec.type.strip() or len(spec.type) > MAX_TYPE or not spec.type.isprintable():
        return f"an alarm's type is 1 to {MAX_TYPE} printable characters"
    if not 1 <= len(spec.create) <= MAX_CREATE:
        return f"create: 1 to {MAX_CREATE} conditions (one per severity)"
    severities = [c.severity for c in spec.create]
    if len(set(severities)) != len(severities):
        return "create: one condition per severity"
    for where, condition in named_conditions(spec):
        problem = _problem(condition)
        if problem is not None:
            return f"{where}: {problem}"
    return None


def _problem(condition: Condition) -> str | None:
    if not 1 <= len(condition.predicates) <= MAX_PREDICATES:
        return f"1 to {MAX_PREDICATES} predicates"
    for number, predicate in enumerate(condition.predicates, 1):
        if predicate.tag is None and predicate.value is None:
            return f"predicate {number} ({predicate.property}): give a value or a tag"
        if predicate.tag is not None and not 1 <= len(predicate.tag) <= 64:
            return f"predicate {number} ({predicate.property}): a tag is 1 to 64 characters"
    if condition.kind == "duration" and not 0 < condition.for_ms <= MAX_HOLD_MS:
        return f"duration: forMs {condition.for_ms} (more than 0, at most {MAX_HOLD_MS})"
    if condition.kind == "repeating":
        if not 1 <= condition.count <= MAX_COUNT:
            return f"repeating: count {condition.count} (1 to {MAX_COUNT})"
        if not 0 <= condition.window_ms <= MAX_HOLD_MS:
            return f"repeating: windowMs {condition.window_ms} (0 to {MAX_HOLD_MS})"
    return None


def named_conditions(spec: AlarmConditionSpec) -> list[tuple[str, Condition]]:
    """Each of its conditions, as an error names it (``create major``, ``clear``)."""
    named: list[tuple[str, Condition]] = [(f"create {c.severity}", c) for c in spec.create]
    if spec.clear is not None:
        named.append(("clear", spec.clear))
    return named


def properties_of(spec: AlarmConditionSpec) -> set[str]:
    return {p.property for _, c in named_conditions(spec) for p in c.predicates}


def uses_tags(spec: AlarmConditionSpec) -> bool:
    return any(p.tag is not None for _, c in named_conditions(spec) for p in c.predicates)


# -- predicates ----------------------------------------------------------------------------


def threshold_of(predicate: Predicate, tags: Tags) -> tuple[Any, str]:
    """The predicate's threshold and where it came from (``value``, ``device tag T``,
    ``group G tag T``, ``default``, or ``none``)."""
    tag = predicate.tag
    if tag is None:
        return predicate.value, "value"
    if tag in tags.device:
        return _tag_value(tags.device[tag]), f"device tag {tag}"
    for group, group_tags in tags.groups:
        if tag in group_tags:
            return _tag_value(group_tags[tag]), f"group {group} tag {tag}"
    if predicate.value is not None:
        return predicate.value, "default"
    return None, "none"


def _tag_value(text: str) -> Scalar:
    """A tag is text; ``92`` or ``0.5`` in it is a number, ``true`` a boolean."""
    try:
        value = msgspec.json.decode(text.strip())
    except msgspec.DecodeError:
        return text
    return value if isinstance(value, bool | int | float) else text


def check(condition: Condition, values: Mapping[str, Any], tags: Tags) -> tuple[bool, list[Any]]:
    """Whether every predicate holds on ``values``, and each one as the alarm's details say
    it: property, value, op, threshold, thresholdFrom."""
    holds = True
    checks = []
    for predicate in condition.predicates:
        threshold, source = threshold_of(predicate, tags)
        value = values.get(predicate.property)
        ok = threshold is not None and compares(value, predicate.op, threshold)
        holds = holds and ok
        checks.append(
            {
                "property": predicate.property,
                "value": value,
                "op": predicate.op,
                "threshold": threshold,
                "thresholdFrom": source,
            }
        )
    return holds, checks


# -- deciding ------------------------------------------------------------------------------

Machine = Threshold | Repeated


def machine_of(condition: Condition) -> Machine:
    if condition.kind == "repeating":
        return Repeated(condition.count, condition.window_ms)
    return Threshold(condition.for_ms if condition.kind == "duration" else 0)


class Verdict(msgspec.Struct, kw_only=True):
    """What to do after a value or a timer: raise at ``severity`` (None: don't), clear, and
    the timers to set (slot → due) or give up (slot → None)."""

    severity: Severity | None = None
    clear: bool = False
    details: dict[str, Any] = {}
    timers: dict[int, int | None] = {}


class DeviceConditions:
    """One alarm condition's state for one device: a machine per create condition (slot: its
    index, most severe first) and one for the clear condition (slot ``CLEAR``)."""

    __slots__ = ("conditions", "machines", "spec")

    def __init__(self, spec: AlarmConditionSpec) -> None:
        self.spec = spec
        ordered = sorted(spec.create, key=lambda c: rank(c.severity), reverse=True)
        self.conditions: dict[int, Condition] = dict(enumerate(ordered))
        if spec.clear is not None:
            self.conditions[CLEAR] = spec.clear
        self.machines: dict[int, Machine] = {
            slot: machine_of(c) for slot, c in self.conditions.items()
        }

    def observe(self, values: Mapping[str, Any], tags: Tags, at: int) -> Verdict:
        """A post heard at ``at``: ``values`` the device's latest, the post's among them."""
        verdict = Verdict(timers={})
        fired: list[tuple[int, list[Any]]] = []
        creating = False
        for slot, condition in self.conditions.items():
            holds, checks = check(condition, values, tags)
            creating = creating or (holds and slot != CLEAR)
            machine = self.machines[slot]
            step = machine.observe(holds, at)
            if step is Next.FIRE:
                fired.append((slot, checks))
            elif step is Next.WAIT:
                verdict.timers[slot] = machine.due
            elif step is Next.CANCEL:
                verdict.timers[slot] = None
        return self._decide(verdict, fired, creating, at)

    def expire(self, slot: int, values: Mapping[str, Any], tags: Tags, now: int) -> Verdict:
        """The timer of ``slot`` went off at ``now``."""
        machine = self.machines.get(slot)
        verdict = Verdict(timers={})
        if machine is None:
            return verdict
        since = getattr(machine, "since", None)
        if not machine.expire(now):
            return verdict
        _, checks = check(self.conditions[slot], values, tags)
        creating = slot != CLEAR or any(
            check(condition, values, tags)[0]
            for other, condition in self.conditions.items()
            if other != CLEAR
        )  # (a clear held long enough clears, unless a create condition holds now)
        verdict = self._decide(verdict, [(slot, checks)], creating, now)
        verdict.details["heldSince"] = since
        return verdict

    def name_of(self, slot: int) -> str:
        """A slot as an error or a trace names it (``create major``, ``clear``)."""
        condition = self.conditions[slot]
        if isinstance(condition, CreateCondition):
            return f"create {condition.severity}"
        return "clear"

    def lookback(self, slot: int) -> int | None:
        """How far back (ms) the values that make a slot's state reach: the last value for a
        simple condition, ``forMs`` for a duration, ``windowMs`` for a repeating one (None
        when it has none: a count of any age is not read back)."""
        condition = self.conditions[slot]
        if condition.kind == "duration":
            return condition.for_ms
        if condition.kind == "repeating":
            return condition.window_ms or None
        return 0

    def resume(self, slot: int, history: Sequence[tuple[int, bool]]) -> int | None:
        """A slot's state from the values heard before a restart (``(at, holds)``, oldest
        first: ``holding``), as the machine resumes it; when its timer is due (None: none
        under way). A raise those values made was made while the platform ran: not again."""
        machine = self.machines.get(slot)
        if machine is None or not history:
            return None
        machine.resume(history)
        return machine.due

    def _decide(
        self, verdict: Verdict, fired: list[tuple[int, list[Any]]], creating: bool, at: int
    ) -> Verdict:
        creates = [(slot, checks) for slot, checks in fired if slot != CLEAR]
        if creates:
            slot, checks = min(creates)  # (the most severe: slots run most severe first)
            condition = self.conditions[slot]
            assert isinstance(condition, CreateCondition)  # (a create slot)
            verdict.severity = condition.severity
            verdict.details = _details(condition, checks, at)
        elif any(slot == CLEAR for slot, _ in fired) and not creating:
            verdict.clear = True
            verdict.details = _details(self.conditions[CLEAR], fired[-1][1], at)
        return verdict


def _details(condition: Condition, checks: list[Any], at: int) -> dict[str, Any]:
    more: dict[str, Any] = {}
    if condition.kind == "duration":
        more["forMs"] = condition.for_ms
    elif condition.kind == "repeating":
        more |= {"count": condition.count, "windowMs": condition.window_ms}
    return {"kind": condition.kind, "at": at, "checks": checks, **more}


def holding(
    condition: Condition, series: Mapping[str, Sequence[tuple[int, Any]]], tags: Tags
) -> list[tuple[int, bool]]:
    """Whether ``condition`` held at each time one of its properties took a value
    (``series``: each property's ``(at, value)``, oldest first), the others at their last
    value before — what ``resume`` is told after a restart."""
    merged = sorted(
        (
            (at, order, prop, value)
            for order, (prop, points) in enumerate(series.items())
            for at, value in points
        ),
        key=lambda item: item[:2],
    )
    values: dict[str, Any] = {}
    found: list[tuple[int, bool]] = []
    for at, _, prop, value in merged:
        values[prop] = value
        holds, _ = check(condition, values, tags)
        if found and found[-1][0] == at:
            found[-1] = (at, holds)
        else:
            found.append((at, holds))
    return found
