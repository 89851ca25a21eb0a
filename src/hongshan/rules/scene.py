"""What a scene is as it is kept, shown, exported and changed — data only; ``services.scenes``
runs it.

A scene (Alibaba's scene linkage, Home Assistant's automation) is *when* (its triggers, any
of them), *if* (its conditions) and *then* (its actions, one after another)::

    name: lamps on when it is dark
    triggers:
      - {type: threshold, device: {productKey: a1Lux, deviceName: lux-01},
         property: Illuminance, op: "<", value: 20, forSeconds: 300}
      - {type: sun, event: dusk, offsetSeconds: -600}
    conditions:
      all: [{type: timeWindow, window: "16:00-01:00"}]
    actions:
      - {type: set, productKey: a1Lamp, deviceName: lamp-0001, values: {LightSwitch: 1}}
      - {type: delay, seconds: 3600}
      - {type: set, productKey: a1Lamp, deviceName: lamp-0001, values: {Brightness: 60}}
    mode: single

Triggers (``type``):

- ``threshold``: a property of a device (or of every device of a product: ``device`` without
  ``deviceName``, each device then with its own state) *crosses* ``op value``: it fires on the
  value that makes the comparison hold after one that did not, never on every value past it;
  with ``forSeconds``, once it has held that long with no value breaking it;
- ``changed``: a property takes a value other than its last;
- ``event``: the device raises ``event``; ``status``: it goes ``online`` or ``offline``;
- ``noData``: nothing heard from the device for ``forSeconds`` (fires once per silence);
- ``cron``: a cron schedule (``rules.cron``) in the town's time zone;
- ``sun``: ``sunrise``, ``sunset``, ``dawn`` or ``dusk`` plus ``offsetSeconds`` (negative:
  before) at ``place`` (``latitude``/``longitude``), or at the town's place by default;
- ``webhook``: ``POST /api/scenes/{id}/trigger`` (its JSON body is the trigger's data).

Conditions: every one of ``all`` and, when ``any`` has some, at least one of those —
``timeWindow`` (``rules.windows``, the town's zone), ``deviceValue`` (a device's latest value
compared), ``groupAggregate`` (``fn`` of a property's latest values over a group's members).

Actions: the rules' actions (``rules.definition``; a ``set``'s ``values`` and an ``invoke``'s
``params`` say what to send: a scene has no SELECTed output), each optionally after a
``delay`` step of ``seconds``. ``mode``: what a trigger does while a run is under way —
``single`` (ignored), ``restart`` (the run is stopped and a new one starts), ``queued`` (runs
one after another, at most ``max`` waiting or running), ``parallel`` (at most ``max`` at once).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.rules.cron import Cron, ScheduleError
from hongshan.rules.definition import ActionSpec, ForwardAction, action_problem
from hongshan.rules.sun import Place, SunEvent, SunTrigger
from hongshan.rules.windows import TimeWindow

Op = Literal[">", ">=", "<", "<=", "==", "!="]
Mode = Literal["single", "restart", "queued", "parallel"]
Scalar = bool | int | float | str

MAX_TRIGGERS = 20
MAX_CONDITIONS = 20
MAX_STEPS = 50
MAX_RUNS = 100  # a mode's ``max``
MAX_HOLD_SECONDS = 7 * 86_400.0  # a forSeconds
MAX_DELAY_SECONDS = 7 * 86_400.0

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def compares(value: Any, op: str, than: Any) -> bool:
    """Whether ``value op than`` holds; a value of another kind (a text against a number,
    nothing at all) never does."""
    if value is None:
        return False
    numeric = isinstance(than, int | float) and not isinstance(than, bool)
    if numeric != (isinstance(value, int | float) and not isinstance(value, bool)):
        return False
    try:
        return bool(_OPS[op](value, than))
    except TypeError:
        return False


class _Tagged(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel"):
    pass


class DeviceSelector(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One device, or every device of the product when ``deviceName`` is left out."""

    product_key: str
    device_name: str | None = None

    def picks(self, product_key: str, device_name: str) -> bool:
        return product_key == self.product_key and self.device_name in (None, device_name)


class ThresholdTrigger(_Tagged, frozen=True, tag="threshold"):
    device: DeviceSelector
    property: str
    op: Op
    value: Scalar
    for_seconds: float = 0.0


class ChangedTrigger(_Tagged, frozen=True, tag="changed"):
    device: DeviceSelector
    property: str


class EventTrigger(_Tagged, frozen=True, tag="event"):
    device: DeviceSelector
    event: str


class StatusTrigger(_Tagged, frozen=True, tag="status"):
    device: DeviceSelector
    status: Literal["online", "offline"]


class NoDataTrigger(_Tagged, frozen=True, tag="noData"):
    device: DeviceSelector
    for_seconds: float


class CronTrigger(_Tagged, frozen=True, tag="cron"):
    expr: str


class PlaceSpec(msgspec.Struct, frozen=True, kw_only=True):
    latitude: float
    longitude: float


class SunTriggerSpec(_Tagged, frozen=True, tag="sun"):
    event: Literal["sunrise", "sunset", "dawn", "dusk"]
    offset_seconds: float = 0.0
    place: PlaceSpec | None = None


class WebhookTrigger(_Tagged, frozen=True, tag="webhook"):
    pass


TriggerSpec = (
    ThresholdTrigger
    | ChangedTrigger
    | EventTrigger
    | StatusTrigger
    | NoDataTrigger
    | CronTrigger
    | SunTriggerSpec
    | WebhookTrigger
)
DeviceTrigger = ThresholdTrigger | ChangedTrigger | EventTrigger | StatusTrigger | NoDataTrigger


class TimeWindowCondition(_Tagged, frozen=True, tag="timeWindow"):
    window: str


class DeviceValueCondition(_Tagged, frozen=True, tag="deviceValue"):
    product_key: str
    device_name: str
    property: str
    op: Op
    value: Scalar


class GroupAggregateCondition(_Tagged, frozen=True, tag="groupAggregate"):
    group: str
    property: str
    fn: Literal["avg", "min", "max", "sum", "count"]
    op: Op
    value: float


ConditionSpec = TimeWindowCondition | DeviceValueCondition | GroupAggregateCondition


class Conditions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    all: Annotated[list[ConditionSpec], msgspec.Meta(max_length=MAX_CONDITIONS)] = []
    any: Annotated[list[ConditionSpec], msgspec.Meta(max_length=MAX_CONDITIONS)] = []


class DelayStep(_Tagged, frozen=True, tag="delay"):
    seconds: float
    kind: ClassVar[str] = "delay"


StepSpec = ActionSpec | DelayStep


class SceneSpec(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A scene as its author writes it (and as ``scene export`` writes it)."""

    name: str
    description: str = ""
    enabled: bool = True
    triggers: Annotated[list[TriggerSpec], msgspec.Meta(min_length=1, max_length=MAX_TRIGGERS)]
    conditions: Conditions = msgspec.field(default_factory=Conditions)
    actions: Annotated[list[StepSpec], msgspec.Meta(max_length=MAX_STEPS)] = []
    mode: Mode = "single"
    max: int = 10


class StoredScene(msgspec.Struct, kw_only=True, rename="camel"):
    """A scene as the registry keeps it: its spec, its id and times, its secret (the key of
    its webhooks' signatures) and its trigger token (what an outside system sends to
    ``/api/scenes/{id}/trigger``)."""

    id: int
    spec: SceneSpec
    secret: str
    token: str
    created_at: int
    updated_at: int
    tenant: str = DEFAULT_TENANT  # it hears and acts on its tenant's devices only


def sun_of(trigger: SunTriggerSpec) -> SunTrigger:
    return SunTrigger(SunEvent(trigger.event), round(trigger.offset_seconds * 1000))


def scene_problem(spec: SceneSpec) -> str | None:
    """What is wrong with a scene in itself (its texts, durations and limits), in words, or
    None; what it names in the registry is checked by ``services.scenes``."""
    if not spec.name.strip() or len(spec.name) > 64:
        return "a scene's name is 1 to 64 characters"
    if "\\u0000" in msgspec.json.encode(spec).decode():
        return "a scene holds no U+0000"
    if not 1 <= spec.max <= MAX_RUNS:
        return f"max {spec.max}: 1 to {MAX_RUNS}"
    for number, trigger in enumerate(spec.triggers, 1):
        problem = _trigger_problem(trigger)
        if problem is not None:
            return f"trigger {number} ({trigger_kind(trigger)}): {problem}"
    for number, condition in enumerate([*spec.conditions.all, *spec.conditions.any], 1):
        if isinstance(condition, TimeWindowCondition):
            try:
                TimeWindow.parse(condition.window)
            except ScheduleError as exc:
                return f"condition {number} (timeWindow): {exc}"
    for number, step in enumerate(spec.actions, 1):
        if isinstance(step, DelayStep):
            if not 0 <= step.seconds <= MAX_DELAY_SECONDS:
                return f"action {number} (delay): {step.seconds:g} s (0 to {MAX_DELAY_SECONDS:g})"
            continue
        if isinstance(step, ForwardAction):  # (a scene has no output of a SELECT to hand on)
            return f"action {number} (rule): a rule's input is given only by another rule"
        problem = action_problem(step)
        if problem is not None:
            return f"action {number}: {problem}"
    return None


def trigger_kind(trigger: TriggerSpec) -> str:
    return str(type(trigger).__struct_config__.tag)


def _trigger_problem(trigger: TriggerSpec) -> str | None:
    match trigger:
        case ThresholdTrigger(for_seconds=hold) | NoDataTrigger(for_seconds=hold):
            low = 0.0 if isinstance(trigger, ThresholdTrigger) else 1.0
            if not low <= hold <= MAX_HOLD_SECONDS:
                return f"forSeconds {hold:g} ({low:g} to {MAX_HOLD_SECONDS:g})"
        case CronTrigger(expr=expr):
            try:
                Cron.parse(expr)
            except ScheduleError as exc:
                return str(exc)
        case SunTriggerSpec(offset_seconds=offset, place=place):
            if abs(offset) > 12 * 3600:
                return f"offsetSeconds {offset:g}: at most 12 hours either way"
            if place is not None:
                try:
                    Place(place.latitude, place.longitude)
                except ScheduleError as exc:
                    return str(exc)
    return None
