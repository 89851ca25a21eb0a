"""``AlarmConditions``: products' alarm conditions run on the bus's property posts, raising
and clearing alarms through ``AlarmService``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from hongshan.alarms.model import Alarm, Originator, Severity
from hongshan.messages import DeviceRef, PropertyValues, Uplink
from hongshan.rules.alarm_conditions import (
    NO_TAGS,
    DeviceConditions,
    StoredAlarmCondition,
    Tags,
    Verdict,
    holding,
    properties_of,
    uses_tags,
)
from hongshan.services.alarms.condition_trace import Decision, DecisionKind, TraceKeeper
from hongshan.services.scenes.engine import Clock, History, Timer, values_between
from hongshan.twin.properties import PropertyValue

log = logging.getLogger("hongshan.alarms.conditions")

DeviceKey = tuple[str, str]


class Raiser(Protocol):
    """What the conditions ask of the alarms (``AlarmService``)."""

    async def raise_alarm(
        self,
        device: DeviceRef,
        type: str,
        severity: Severity,
        details: dict[str, Any],
        originator: Originator,
    ) -> Alarm: ...

    async def clear_alarm(self, device: DeviceRef, type: str, *, by: str) -> Alarm | None: ...


class TagReader(Protocol):
    """Where a threshold kept in a tag is read, in memory (the registry's ``TagDirectory``)."""

    def tags_of(self, product_key: str, device_name: str) -> Mapping[str, str]: ...

    def group_tags_of(
        self, product_key: str, device_name: str
    ) -> Sequence[tuple[str, Mapping[str, str]]]: ...


class RunningCondition:
    """One enabled condition: its state per device, the timers of its durations, its trace."""

    __slots__ = ("devices", "properties", "stored", "tagged", "timers", "trace")

    def __init__(self, stored: StoredAlarmCondition) -> None:
        self.stored = stored
        self.properties = properties_of(stored.spec)
        self.tagged = uses_tags(stored.spec)
        self.devices: dict[DeviceKey, DeviceConditions] = {}
        self.timers: dict[tuple[DeviceKey, int], Timer] = {}
        self.trace = TraceKeeper()

    def state(self, device: DeviceKey) -> DeviceConditions:
        found = self.devices.get(device)
        if found is None:
            found = self.devices[device] = DeviceConditions(self.stored.spec)
        return found


class _Heard(msgspec.Struct, frozen=True):
    device: DeviceKey
    values: dict[str, Any]
    at: int


class _Expired(msgspec.Struct, frozen=True):
    running: RunningCondition
    device: DeviceKey
    slot: int


class _Prime(msgspec.Struct, frozen=True):
    running: RunningCondition


class AlarmConditions:
    """Runs the enabled alarm conditions of the products. Hears the bus's property posts
    (``on_uplink``), and tells each condition's per-device state (``rules.alarm_conditions``,
    pure) the device's latest values and, for a threshold kept in a tag, the device's and its
    groups' tags as they are now (read in memory: no query on a post); raises, raises again
    or clears the alarm it answers (``Raiser``), and keeps the timers of its durations on a
    ``Clock`` (the scenes'). A condition put in (at start, or created or changed) reads its
    durations under way back from the history.

    Everything — posts, timers, priming — goes through one queue, in order, so that a
    device's values are decided in the order heard and a raise is done before the clear
    after it. Owns the states and the timers; never stores or checks a condition
    (``AlarmConditionBook``) nor keeps an alarm (``AlarmService``)."""

    def __init__(
        self,
        *,
        clock: Clock,
        alarms: Raiser,
        latest: Callable[[str, str], Mapping[str, PropertyValue]],
        tags: TagReader,
        devices_of: Callable[[str], Iterable[DeviceKey]],
        history: History,
    ) -> None:
        self.clock = clock
        self._alarms = alarms
        self._latest = latest
        self._tags = tags
        self._devices_of = devices_of
        self._history = history
        self._conditions: dict[int, RunningCondition] = {}
        self._by_product: dict[str, list[RunningCondition]] = {}
        self._queue: asyncio.Queue[_Heard | _Expired | _Prime] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="alarm conditions")

    async def stop(self) -> None:
        for running in self._conditions.values():
            for timer in running.timers.values():
                timer.cancel()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # -- the conditions ----------------------------------------------------------------------

    def put(self, stored: StoredAlarmCondition) -> None:
        """Run ``stored`` (in place of one with its id: its state starts again)."""
        self.drop(stored.id)
        running = self._conditions[stored.id] = RunningCondition(stored)
        self._by_product.setdefault(stored.spec.product_key, []).append(running)
        self._queue.put_nowait(_Prime(running))

    def drop(self, condition_id: int) -> None:
        running = self._conditions.pop(condition_id, None)
        if running is None:
            return
        product = running.stored.spec.product_key
        kept = [other for other in self._by_product.get(product, []) if other is not running]
        if kept:
            self._by_product[product] = kept
        else:
            self._by_product.pop(product, None)
        for timer in running.timers.values():
            timer.cancel()
        running.timers.clear()

    def forget(self, product_key: str, device_name: str) -> None:
        """A device deleted: its states and timers go (a device of the name made again
        starts afresh)."""
        device = (product_key, device_name)
        for running in self._by_product.get(product_key, []):
            running.devices.pop(device, None)
            for key in [key for key in running.timers if key[0] == device]:
                running.timers.pop(key).cancel()

    def running(self, condition_id: int) -> RunningCondition | None:
        return self._conditions.get(condition_id)

    # -- what it hears -----------------------------------------------------------------------

    def on_uplink(self, uplink: Uplink) -> None:
        if not isinstance(uplink, PropertyValues) or not self._by_product:
            return
        conditions = self._by_product.get(uplink.device.product)
        if not conditions or not any(c.properties & uplink.values.keys() for c in conditions):
            return
        # (timed by the clock its timers keep, as the scenes' are: a device's own may be off)
        device = (uplink.device.product, uplink.device.device)
        self._queue.put_nowait(_Heard(device, dict(uplink.values), self.clock.now()))

    async def _work(self) -> None:
        while True:
            await self._do(await self._queue.get())

    async def drain(self) -> None:
        """Do what is queued, here and now: how a backtest drives a copy that runs no worker
        (``start`` not called), each post and timer done before the next is heard."""
        queue = self._queue
        while not queue.empty():
            await self._do(queue.get_nowait())

    async def _do(self, item: _Heard | _Expired | _Prime) -> None:
        try:
            if isinstance(item, _Heard):
                await self._heard(item)
            elif isinstance(item, _Expired):
                await self._expired(item)
            else:
                await self._prime(item.running)
        except Exception:  # (one post's or timer's fault never stops the others)
            log.exception("alarm conditions: %r not done", type(item).__name__)

    async def _heard(self, heard: _Heard) -> None:
        tags: Tags | None = None
        for running in list(self._by_product.get(heard.device[0], [])):
            if not running.properties & heard.values.keys() or not self._live(running):
                continue
            running.trace.counters.heard += 1
            if running.tagged and tags is None:
                tags = self._tags_of(heard.device)
            values = self._values_of(heard.device) | heard.values
            verdict = running.state(heard.device).observe(values, tags or NO_TAGS, heard.at)
            await self._apply(running, heard.device, verdict, heard.at)

    async def _expired(self, expired: _Expired) -> None:
        running, device = expired.running, expired.device
        if not self._live(running):
            return
        running.timers.pop((device, expired.slot), None)
        running.trace.counters.timers_done += 1
        tags = self._tags_of(device) if running.tagged else NO_TAGS
        state = running.state(device)
        verdict = state.expire(expired.slot, self._values_of(device), tags, self.clock.now())
        await self._apply(running, device, verdict, self.clock.now())

    def _tags_of(self, device: DeviceKey) -> Tags:
        return Tags(device=self._tags.tags_of(*device), groups=self._tags.group_tags_of(*device))

    def _values_of(self, device: DeviceKey) -> dict[str, Any]:
        return {name: found.value for name, found in self._latest(*device).items()}

    def _live(self, running: RunningCondition) -> bool:
        return self._conditions.get(running.stored.id) is running

    async def _apply(
        self, running: RunningCondition, device: DeviceKey, verdict: Verdict, at: int
    ) -> None:
        """Do what ``verdict`` says, decided on what was heard at ``at``."""
        for slot, due in verdict.timers.items():
            self._set_timer(running, device, slot, due, at)
        spec = running.stored.spec
        ref = DeviceRef(*device)
        details = {"condition": running.stored.id, **verdict.details}
        counters = running.trace.counters
        if verdict.severity is not None:
            origin = Originator(kind="condition", id=str(running.stored.id))
            alarm = await self._alarms.raise_alarm(
                ref, spec.type, verdict.severity, details, origin
            )
            repeated = alarm.repeats > 0
            counters.repeated += repeated
            counters.raised += not repeated
            kind: DecisionKind = "repeated" if repeated else "raised"
            self._decided(running, device, at, kind, verdict.severity)
        elif verdict.clear:
            cleared = await self._alarms.clear_alarm(
                ref, spec.type, by=f"condition:{running.stored.id}"
            )
            if cleared is None:
                counters.cleared_none += 1
            else:
                counters.cleared += 1
                self._decided(running, device, at, "cleared")

    def _decided(
        self,
        running: RunningCondition,
        device: DeviceKey,
        at: int,
        kind: DecisionKind,
        severity: Severity | None = None,
        *,
        slot: int | None = None,
        until: int | None = None,
    ) -> None:
        running.trace.decided(
            Decision(
                at=at,
                decision=kind,
                product_key=device[0],
                device_name=device[1],
                condition=None if slot is None else running.state(device).name_of(slot),
                severity=severity,
                until=until,
            )
        )

    def _set_timer(
        self, running: RunningCondition, device: DeviceKey, slot: int, due: int | None, at: int
    ) -> None:
        old = running.timers.pop((device, slot), None)
        if old is not None:
            old.cancel()
        if not self._live(running):
            return
        if due is None:
            if old is not None:  # (a value broke the hold under way)
                running.trace.counters.timers_cancelled += 1
                self._decided(running, device, at, "broken", slot=slot)
            return
        running.trace.counters.timers_started += 1
        self._decided(running, device, at, "waiting", slot=slot, until=due)
        expired = _Expired(running, device, slot)
        running.timers[(device, slot)] = self.clock.call_at(
            due, lambda: self._queue.put_nowait(expired)
        )

    # -- priming from the history ------------------------------------------------------------

    async def _prime(self, running: RunningCondition) -> None:
        """Each device's state as the values before the start (or the change) leave it, read
        of the history: a duration under way goes on from when its condition began holding,
        a repeating count within its window goes on, a condition that held (and raised
        then) does not raise again on the next value that holds."""
        if not self._live(running):
            return
        now = self.clock.now()
        for device in list(self._devices_of(running.stored.spec.product_key)):
            state = running.state(device)
            tags = self._tags_of(device) if running.tagged else NO_TAGS
            for slot, condition in state.conditions.items():
                span = state.lookback(slot)
                if span is None:
                    continue
                series = {
                    prop: await values_between(self._history, device, prop, now - span, now)
                    for prop in {p.property for p in condition.predicates}
                }
                due = state.resume(slot, holding(condition, series, tags))
                if due is not None:
                    self._set_timer(running, device, slot, due, now)
