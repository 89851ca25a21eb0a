"""``ConditionBacktester``: a product's alarm condition run over what the history recorded in
a range — each alarm it would have raised, raised again and cleared, on which device, when,
with which details — and two versions of a condition compared on the same range.

The condition runs in an ``AlarmConditions`` of its own, the live deciding as it is, with
three things in place of the live ones: its clock is the recorded clock (``RecordedClock``:
moved to each replayed uplink's time, a duration's timer gone off at its recorded time when
it falls between two uplinks), its ``latest`` values are those of the replay so far
(``ReplayedTwin``), and its alarms are ``RecordedAlarms``: each raise and clear decided on the
pure model (``alarms.model``) as the live service decides it, and only noted. Nothing is
raised, sent or stored.

Each device's state at the range's start is primed from the values before it, as a restart
primes it (a duration under way goes on, a count within its window goes on, a condition that
held and raised before the start does not raise again; a duration it finds complete before
the start raises then, unreported, and its alarm is open in the range). What is not
replayed: the alarms kept as open at the range's start (none is read: a clear of one is
nothing, a raise of one is a new alarm); a tag threshold's tags as they were (today's are
read, once per device); an alarm's escalation and acknowledgements.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from hongshan.alarms.model import Alarm, Originator, Severity, raise_again, raised, transition
from hongshan.messages import DeviceRef, PropertyValues
from hongshan.rules.alarm_conditions import StoredAlarmCondition, uses_tags
from hongshan.services.alarms.conditions import AlarmConditions, DeviceKey, TagReader
from hongshan.services.rules.backtest import (
    DEFAULT_LIMIT,
    MAX_SECONDS,
    MAX_VALUES,
    YIELD_EVERY,
    Replayed,
    check_range,
)
from hongshan.services.scenes.backtest import Recorded
from hongshan.services.scenes.recorded import HistoryAtStart, RecordedClock, ReplayedTwin

ChangeKind = Literal["raised", "repeated", "upgraded", "cleared"]


class AlarmChange(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """What a condition would have done to a device's alarm at ``at`` (the recorded ms):
    ``raised`` a new one at ``severity``, raised the open one again (``repeated``; ``upgraded``
    when that made it more severe than ``previous``), or ``cleared`` it (``severity``: its
    severity then); ``details`` are those the alarm would carry."""

    at: int
    change: ChangeKind
    product_key: str
    device_name: str
    severity: Severity
    previous: Severity | None = None
    details: dict[str, Any] = {}


class ConditionTally(msgspec.Struct, kw_only=True, rename="camel"):
    """One condition over the range: posts heard (those carrying one of its properties), its
    durations' timers started and given up, the changes by kind (a repeat that raised the
    severity counts as ``upgraded`` only), the alarms open at the end, and the first
    ``limit`` changes (``changes``)."""

    type: str
    heard: int
    raised: int
    repeated: int
    upgraded: int
    cleared: int
    open_at_end: int
    timers_started: int
    timers_cancelled: int
    changes: list[AlarmChange]


class ConditionBacktest(Replayed, kw_only=True, rename="camel"):
    """What a condition's backtest found. With ``against``: ``onlyCondition`` (raises and
    clears the condition makes and the other version does not, at the same time on the same
    device, a raise at the same severity), ``onlyAgainst`` (the other way), listed up to the
    limit and counted whole (``counts``)."""

    condition: ConditionTally
    against: ConditionTally | None = None
    only_condition: list[AlarmChange] = []
    only_against: list[AlarmChange] = []


class RecordedAlarms:
    """The alarms of a backtest (``AlarmConditions``' ``Raiser``): each raise and clear
    decided on the pure model as ``AlarmService`` decides it — one open alarm per device and
    type, a raise while it is open a repeat (its severity raised, never lowered), a clear of
    none nothing — and noted (counted; the first ``limit`` listed; those before ``since``,
    the priming's, neither). Keeps only the open alarms; when ``compared``, the changes since
    the last pairing (``fresh``)."""

    def __init__(self, clock: RecordedClock, *, since: int, limit: int, compared: bool) -> None:
        self._clock = clock
        self._since = since
        self._limit = limit
        self._compared = compared
        self.open: dict[tuple[str, str, str], Alarm] = {}
        self.counts: dict[ChangeKind, int] = dict.fromkeys(
            ("raised", "repeated", "upgraded", "cleared"), 0
        )
        self.listed: list[AlarmChange] = []
        self.fresh: list[AlarmChange] = []

    async def raise_alarm(
        self,
        device: DeviceRef,
        type: str,
        severity: Severity,
        details: dict[str, Any],
        originator: Originator,
    ) -> Alarm:
        now = self._clock.now()
        key = (device.product, device.device, type)
        alarm = self.open.get(key)
        previous = None
        if alarm is None:
            kind: ChangeKind = "raised"
            alarm = raised(
                product_key=device.product,
                device_name=device.device,
                type=type,
                severity=severity,
                originator=originator,
                details=details,
                escalation=None,
                now=now,
            )
        else:
            before = alarm.severity
            alarm = raise_again(alarm, severity=severity, details=details, escalation=None, now=now)
            kind = "repeated" if alarm.severity == before else "upgraded"
            previous = None if kind == "repeated" else before
        self.open[key] = alarm
        self._note(
            AlarmChange(
                at=now,
                change=kind,
                product_key=device.product,
                device_name=device.device,
                severity=severity,
                previous=previous,
                details=details,
            )
        )
        return alarm

    async def clear_alarm(self, device: DeviceRef, type: str, *, by: str) -> Alarm | None:
        alarm = self.open.pop((device.product, device.device, type), None)
        if alarm is None:
            return None
        now = self._clock.now()
        self._note(
            AlarmChange(
                at=now,
                change="cleared",
                product_key=device.product,
                device_name=device.device,
                severity=alarm.severity,
            )
        )
        return transition(alarm, "clear", by=by, now=now)

    def _note(self, change: AlarmChange) -> None:
        if change.at < self._since:
            return  # (a duration the priming found complete before the range: only its alarm)
        self.counts[change.change] += 1
        if len(self.listed) < self._limit:
            self.listed.append(change)
        if self._compared:
            self.fresh.append(change)


def _key(change: AlarmChange) -> tuple[Any, ...]:
    """What makes two versions' changes the same: a raise (new or again) at a severity, or a
    clear, at one time on one device."""
    cleared = change.change == "cleared"
    return (
        change.at,
        change.product_key,
        change.device_name,
        cleared,
        None if cleared else change.severity,
    )


class _Pairing:
    """The changes of two versions paired as the recorded time goes on: each time the clock
    is to move on, what both did so far (all at or before the time it leaves) is paired."""

    def __init__(self, sides: tuple[RecordedAlarms, RecordedAlarms], limit: int) -> None:
        self._sides = sides
        self._limit = limit
        self.only: tuple[list[AlarmChange], list[AlarmChange]] = ([], [])
        self.counts = {"onlyCondition": 0, "onlyAgainst": 0, "same": 0}

    def take(self) -> None:
        first, second = self._sides
        mine, theirs = first.fresh, second.fresh
        if not mine and not theirs:
            return
        first.fresh, second.fresh = [], []
        left = Counter(_key(change) for change in theirs)
        for change in mine:
            key = _key(change)
            if left[key] > 0:
                left[key] -= 1
                self.counts["same"] += 1
            else:
                self._only(0, change)
        for change in theirs:
            key = _key(change)
            if left[key] > 0:
                left[key] -= 1
                self._only(1, change)

    def _only(self, side: int, change: AlarmChange) -> None:
        self.counts[("onlyCondition", "onlyAgainst")[side]] += 1
        if len(self.only[side]) < self._limit:
            self.only[side].append(change)


@dataclass(kw_only=True)
class _Version:
    """One version of the condition under way: its engine and its alarms."""

    stored: StoredAlarmCondition
    engine: AlarmConditions
    alarms: RecordedAlarms

    def tally(self) -> ConditionTally:
        running = self.engine.running(self.stored.id)
        assert running is not None  # (put at the start, never dropped)
        counters = running.trace.counters
        counts = self.alarms.counts
        return ConditionTally(
            type=self.stored.spec.type,
            heard=counters.heard,
            raised=counts["raised"],
            repeated=counts["repeated"],
            upgraded=counts["upgraded"],
            cleared=counts["cleared"],
            open_at_end=len(self.alarms.open),
            timers_started=counters.timers_started,
            timers_cancelled=counters.timers_cancelled,
            changes=self.alarms.listed,
        )


@dataclass(kw_only=True)
class _Run:
    """One backtest under way: the recorded clock, the replayed twin, the versions."""

    clock: RecordedClock
    replayed: ReplayedTwin
    versions: list[_Version]
    pairing: _Pairing | None

    async def drain(self) -> None:
        for version in self.versions:
            await version.engine.drain()

    async def until(self, at: int) -> None:
        """The timers due by ``at`` gone off in order, each decided before the next; then
        the clock at ``at``."""
        clock = self.clock
        due = clock.next_due()
        while due is not None and due <= at:
            self.take(due)
            clock.fire_next()
            await self.drain()
            due = clock.next_due()
        self.take(at)
        clock.move_to(at)

    def take(self, at: int) -> None:
        if self.pairing is not None and at > self.clock.now():
            self.pairing.take()


class ConditionBacktester:
    """Runs alarm conditions' backtests: replays the history's range for the devices of the
    condition's product into an ``AlarmConditions`` of its own per version, on one recorded
    clock (module docstring). One backtest at a time (a second waits): each is bounded by the
    rules' backtest's ``MAX_RANGE``, ``MAX_VALUES`` and ``MAX_SECONDS`` and gives the event
    loop back every ``YIELD_EVERY`` uplinks. Owns no condition and raises no alarm; never
    sends, publishes or stores."""

    def __init__(
        self,
        history: Recorded,
        *,
        tags: TagReader,
        devices_of: Callable[[str], Iterable[DeviceKey]],
    ) -> None:
        self._history = history
        self._tags = tags
        self._devices_of = devices_of
        self._one_at_a_time = asyncio.Semaphore(1)

    async def run(
        self,
        condition: StoredAlarmCondition,
        start: int,
        end: int,
        *,
        against: StoredAlarmCondition | None = None,
        limit: int = DEFAULT_LIMIT,
        max_values: int = MAX_VALUES,
        max_seconds: float = MAX_SECONDS,
    ) -> ConditionBacktest:
        """The condition (and ``against``) over [start, end) (ms); ``HistoryProblem`` (400)
        for a range or limit that cannot be. The conditions were checked
        (``AlarmConditionBook.check``)."""
        check_range(start, end, limit)
        conditions = [condition] if against is None else [condition, against]
        async with self._one_at_a_time:
            run = self._start(conditions, start, limit)
            try:
                return await self._replay(run, conditions, start, end, max_values, max_seconds)
            finally:
                for version in run.versions:
                    await version.engine.stop()

    def _start(self, conditions: list[StoredAlarmCondition], start: int, limit: int) -> _Run:
        clock = RecordedClock(start - 1)  # (primed with what was recorded before the start)
        replayed = ReplayedTwin()
        history = HistoryAtStart(self._history)
        versions = []
        for stored in conditions:
            alarms = RecordedAlarms(clock, since=start, limit=limit, compared=len(conditions) == 2)
            engine = AlarmConditions(
                clock=clock,
                alarms=alarms,
                latest=replayed.latest,
                tags=self._tags,
                devices_of=self._devices_of,
                history=history,
            )
            versions.append(_Version(stored=stored, engine=engine, alarms=alarms))
        pairing = None
        if len(versions) == 2:
            pairing = _Pairing((versions[0].alarms, versions[1].alarms), limit)
        return _Run(clock=clock, replayed=replayed, versions=versions, pairing=pairing)

    async def _replay(
        self,
        run: _Run,
        conditions: list[StoredAlarmCondition],
        start: int,
        end: int,
        max_values: int,
        max_seconds: float,
    ) -> ConditionBacktest:
        clock, replayed = run.clock, run.replayed
        for version in run.versions:
            version.engine.put(version.stored)
        await run.drain()  # (primed)
        await run.until(start - 1)  # (what the priming found due before the start)
        products = {stored.spec.product_key for stored in conditions}
        product = next(iter(products)) if len(products) == 1 else None
        uplinks = values = 0
        stopped_at: int | None = None
        deadline = time.monotonic() + max_seconds
        engines = [version.engine for version in run.versions]
        async for chunk in self._history.replay(start, end, product=product):
            for done, uplink in enumerate(chunk, start=1):
                at = uplink.received
                if at > clock.now():
                    await run.until(at)
                if type(uplink) is PropertyValues:
                    replayed.take(uplink)
                    for engine in engines:
                        engine.on_uplink(uplink)
                        await engine.drain()
                if done % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # (the live town goes on meanwhile)
            uplinks += len(chunk)
            values += sum(len(getattr(uplink, "values", ())) for uplink in chunk)
            if values + uplinks >= max_values or time.monotonic() > deadline:
                stopped_at = chunk[-1].received + 1
                break
        last = end if stopped_at is None else stopped_at
        await run.until(last - 1)  # (what falls due up to the range's end, in it)
        if run.pairing is not None:
            run.pairing.take()
        result = ConditionBacktest(
            start=start,
            end=last,
            uplinks=uplinks,
            values=values,
            complete=stopped_at is None,
            stopped_at=stopped_at,
            condition=run.versions[0].tally(),
            notes=_notes(conditions, uplinks),
        )
        if run.pairing is not None:
            result.against = run.versions[1].tally()
            result.only_condition, result.only_against = run.pairing.only
            result.counts = run.pairing.counts
        return result


def _notes(conditions: list[StoredAlarmCondition], uplinks: int) -> list[str]:
    notes = [
        "the alarms open at the range's start are not read: a clear of one is not counted,"
        " and its first raise in the range counts as a new alarm"
    ]
    if any(uses_tags(stored.spec) for stored in conditions):
        notes.append("tag thresholds are read from the devices' and groups' tags as they are now")
    if not uplinks:
        named = ", ".join(sorted({stored.spec.product_key for stored in conditions}))
        notes.append(f"nothing was recorded in the range for the devices of {named}")
    return notes
