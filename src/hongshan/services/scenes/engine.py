"""``SceneEngine``: the enabled scenes, triggered by the bus's uplinks, their clocks and
webhooks, their conditions asked, their actions run step by step in their mode."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from hongshan.errors import HongshanError
from hongshan.messages import DeviceRef, EventRaised, PropertyValues, StatusChanged, Uplink
from hongshan.rules.cron import Cron
from hongshan.rules.scene import (
    ChangedTrigger,
    ConditionSpec,
    CronTrigger,
    DeviceValueCondition,
    EventTrigger,
    GroupAggregateCondition,
    NoDataTrigger,
    StatusTrigger,
    SunTriggerSpec,
    ThresholdTrigger,
    TimeWindowCondition,
    compares,
    sun_of,
    trigger_kind,
)
from hongshan.rules.scene_triggers import Changed, Next, Silence, Threshold
from hongshan.rules.sun import Place
from hongshan.services.rules.actions import Action, Fired
from hongshan.services.scenes.running import Delay, DeviceKey, RunningScene, RunRecord
from hongshan.store.history.model import PointPage
from hongshan.twin.properties import PropertyValue

log = logging.getLogger("hongshan.scenes")

HISTORY_PAGES = 20  # pages of 1000 values read to resume one hold
EARLY_MS = 1000  # a schedule's timer that goes off sooner than this before its time waits on


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The scenes' time: now (ms since the epoch) and a call at a time."""

    def now(self) -> int: ...

    def call_at(self, at: int, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """The wall clock, and the running loop's timers."""

    def now(self) -> int:
        return int(time.time() * 1000)

    def call_at(self, at: int, callback: Callable[[], None]) -> Timer:
        delay = max(0.0, (at - self.now()) / 1000)
        return asyncio.get_running_loop().call_later(delay, callback)


class History(Protocol):
    """What a restart reads of the history (``store.history.HistoryStore``)."""

    async def points(
        self,
        device: DeviceKey,
        identifier: str,
        start: int,
        end: int,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        descending: bool = False,
    ) -> PointPage: ...

    async def latest_values(self) -> dict[DeviceKey, dict[str, tuple[Any, int]]]: ...


class Waits(Protocol):
    """Where runs waiting in a delay are kept (``store.registry.scenes.SceneTable``)."""

    async def add_wait(self, scene_id: int, due: int, step: int, data: dict[str, Any]) -> int: ...

    async def drop_wait(self, wait_id: int) -> None: ...


async def values_between(
    history: History, device: DeviceKey, identifier: str, start: int, end: int
) -> list[tuple[int, Any]]:
    """A property's values from the last one before ``start`` to ``end``, oldest first: what
    a hold under way is resumed from after a restart (the scenes', the alarm conditions')."""
    before = await history.points(device, identifier, 0, start, limit=1, descending=True)
    found = [(point.ts, point.value) for point in before.points]
    cursor = None
    for _ in range(HISTORY_PAGES):
        page = await history.points(device, identifier, start, end + 1, cursor=cursor)
        found += [(point.ts, point.value) for point in page.points]
        if page.next is None:
            break
        cursor = page.next
    return found


class SceneEngine:
    """Runs the enabled scenes. Hears the bus's uplinks (``on_uplink``: property values,
    events, status changes) and drives each scene's device triggers' state machines
    (``rules.scene_triggers``) with them, one per trigger and device; keeps the timers of
    holds, silences, cron schedules and the sun; asks a triggered scene's conditions (time
    windows in the town's zone, the twin's latest values, a group's aggregate); and runs its
    steps one after another in a task, in its mode (single, restart, queued, parallel).

    A scene put in the engine (at start, or when created or changed) primes its state from
    the history: a hold under way goes on from when it started, a silence from the device's
    last value. A run in a delay is kept in the registry (``Waits``) and goes on after a
    restart (``resume``). Owns the timers and the runs' tasks; never stores or checks a scene
    (``SceneBook``)."""

    def __init__(
        self,
        *,
        clock: Clock,
        zone: dt.tzinfo,
        place: Place | None,
        latest: Callable[[str, str], Mapping[str, PropertyValue]],
        members: Callable[[str, str], Awaitable[list[DeviceKey]]],  # (name, tenant)
        devices_of: Callable[[str], Iterable[DeviceKey]],
        history: History,
        waits: Waits,
    ) -> None:
        self.clock = clock
        self.zone = zone
        self.place = place
        self._latest = latest
        self._members = members
        self._devices_of = devices_of
        self._history = history
        self._waits = waits
        self._scenes: dict[int, RunningScene] = {}
        self._by_product: dict[str, list[RunningScene]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- the scenes ------------------------------------------------------------------------

    def put(self, scene: RunningScene) -> None:
        """Run ``scene`` (in place of one with its id: its runs are cancelled, its state and
        counters start again)."""
        self.drop(scene.id)
        self._scenes[scene.id] = scene
        for product in {trigger.device.product_key for _, trigger in scene.device_triggers}:
            self._by_product.setdefault(product, []).append(scene)
        now = self.clock.now()
        for index, trigger in enumerate(scene.triggers):
            if isinstance(trigger, CronTrigger | SunTriggerSpec):
                self._schedule(scene, index, trigger, now)
        self._spawn(self._prime(scene))

    def drop(self, scene_id: int) -> None:
        """Stop running the scene: its timers, its runs (their delays forgotten), its trace."""
        scene = self._scenes.pop(scene_id, None)
        if scene is None:
            return
        for product, scenes in list(self._by_product.items()):
            if scene in scenes:
                scenes.remove(scene)
                if not scenes:
                    del self._by_product[product]
        for timer in scene.timers.values():
            timer.cancel()
        scene.timers.clear()
        scene.queue.clear()
        for task in scene.runs_under_way:
            task.cancel()

    def running(self, scene_id: int) -> RunningScene | None:
        return self._scenes.get(scene_id)

    @property
    def busy(self) -> int:
        """Its tasks not yet gone (runs under way or waiting, primings, groups asked for):
        a backtest's driver lets the loop turn until those not waiting on its clock are."""
        return len(self._tasks)

    async def stop(self) -> None:
        """Give up the timers and the runs under way; runs waiting in a delay are kept for the
        next start."""
        self._stopping = True
        for scene in self._scenes.values():
            for timer in scene.timers.values():
                timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- what it hears ---------------------------------------------------------------------

    def on_uplink(self, uplink: Uplink) -> None:
        if not self._by_product:
            return
        scenes = self._by_product.get(uplink.device.product)
        if not scenes:
            return
        for scene in list(scenes):
            if scene.heard_early is not None:  # (still priming: heard once it is done)
                scene.heard_early.append(uplink)
            else:
                self._hear(scene, uplink)

    def _hear(self, scene: RunningScene, uplink: Uplink) -> None:
        # (timed by the engine's clock, as its timers are: a device's own clock may be off)
        now = self.clock.now()
        device = (uplink.device.product, uplink.device.device)
        for index, trigger in scene.device_triggers:
            if not trigger.device.picks(*device):
                continue
            key = (index, device)
            match trigger:
                case ThresholdTrigger() if isinstance(uplink, PropertyValues):
                    if trigger.property in uplink.values:
                        value = uplink.values[trigger.property]
                        self._threshold(scene, key, trigger, value, now)
                case ChangedTrigger() if isinstance(uplink, PropertyValues):
                    if trigger.property in uplink.values:
                        value = uplink.values[trigger.property]
                        change = scene.changes.setdefault(key, Changed())
                        if change.observe(value):
                            self._triggered(scene, _data(trigger, device, value=value))
                case EventTrigger() if isinstance(uplink, EventRaised):
                    if uplink.event == trigger.event:
                        data = _data(trigger, device, event=uplink.event, params=uplink.params)
                        self._triggered(scene, data)
                case StatusTrigger() if isinstance(uplink, StatusChanged):
                    if uplink.online == (trigger.status == "online"):
                        self._triggered(scene, _data(trigger, device, status=trigger.status))
                case NoDataTrigger() if isinstance(uplink, PropertyValues | EventRaised):
                    silence = scene.silences.get(key)
                    if silence is None:
                        silence = scene.silences[key] = Silence(_ms(trigger.for_seconds), 0)
                    self._set_timer(scene, key, silence.observe(now))

    def _threshold(
        self,
        scene: RunningScene,
        key: tuple[int, DeviceKey],
        trigger: ThresholdTrigger,
        value: Any,
        at: int,
    ) -> None:
        state = scene.thresholds.get(key)
        if state is None:
            state = scene.thresholds[key] = Threshold(_ms(trigger.for_seconds))
        step = state.observe(compares(value, trigger.op, trigger.value), at)
        if step is Next.FIRE:
            self._triggered(scene, _data(trigger, key[1], value=value))
        elif step is Next.WAIT and state.due is not None:
            self._set_timer(scene, key, state.due)
        elif step is Next.CANCEL:
            timer = scene.timers.pop(key, None)
            if timer is not None:
                timer.cancel()

    def _set_timer(self, scene: RunningScene, key: tuple[int, DeviceKey], due: int) -> None:
        old = scene.timers.pop(key, None)
        if old is not None:
            old.cancel()
        if self._scenes.get(scene.id) is not scene:
            return  # (dropped while it was priming)
        scene.timers[key] = self.clock.call_at(due, lambda: self._expired(scene, key))

    def _expired(self, scene: RunningScene, key: tuple[int, DeviceKey]) -> None:
        """A hold's or a silence's timer went off."""
        if self._scenes.get(scene.id) is not scene:
            return
        scene.timers.pop(key, None)
        now = self.clock.now()
        index, device = key
        trigger = scene.triggers[index]
        threshold = scene.thresholds.get(key)
        if threshold is not None and threshold.expire(now):
            latest = self._latest(*device).get(getattr(trigger, "property", ""))
            value = None if latest is None else latest.value
            data = _data(trigger, device, value=value, heldSince=threshold.since)
            self._triggered(scene, data)
            return
        silence = scene.silences.get(key)
        if silence is not None and silence.expire(now):
            self._triggered(scene, _data(trigger, device, lastHeard=silence.heard))

    # -- schedules -------------------------------------------------------------------------

    def _schedule(
        self, scene: RunningScene, index: int, trigger: CronTrigger | SunTriggerSpec, after: int
    ) -> None:
        due = self.next_fire(trigger, after)
        if due is None:
            return

        def fire() -> None:
            if self._scenes.get(scene.id) is not scene:
                return
            if self.clock.now() < due - EARLY_MS:  # (the loop's timers keep the monotonic
                # clock: the wall clock was set back since, a schedule keeps the wall's time)
                scene.timers[(index, None)] = self.clock.call_at(due, fire)
                return
            self._triggered(scene, {"trigger": trigger_kind(trigger), "index": index, "at": due})
            self._schedule(scene, index, trigger, max(due, self.clock.now()))

        scene.timers[(index, None)] = self.clock.call_at(due, fire)

    def next_fire(self, trigger: CronTrigger | SunTriggerSpec, after: int) -> int | None:
        """When a schedule of a scene next fires strictly after ``after`` (ms)."""
        if isinstance(trigger, CronTrigger):
            return Cron.parse(trigger.expr).next_after(after, self.zone)
        place = self.place
        if trigger.place is not None:
            place = Place(trigger.place.latitude, trigger.place.longitude)
        if place is None:  # (refused when stored: the town's place was unset since)
            log.warning("a sun trigger with no place, and the town has none: not scheduled")
            return None
        return sun_of(trigger).next_after(after, place, self.zone)

    # -- priming from the history ----------------------------------------------------------

    async def _prime(self, scene: RunningScene) -> None:
        try:
            await self._prime_from_history(scene)
        except Exception:  # (a history that cannot be read: the scene starts afresh)
            log.exception("scene %s (%s): its state could not be read back", scene.id, scene.name)
        finally:
            early, scene.heard_early = scene.heard_early or [], None
            if self._scenes.get(scene.id) is scene:
                for uplink in early:
                    self._hear(scene, uplink)

    async def _prime_from_history(self, scene: RunningScene) -> None:
        now = self.clock.now()
        last_heard: dict[DeviceKey, dict[str, tuple[Any, int]]] | None = None
        for index, trigger in scene.device_triggers:
            selector = trigger.device
            if selector.device_name is None:
                devices = list(self._devices_of(selector.product_key))
            else:
                devices = [(selector.product_key, selector.device_name)]
            for device in devices:
                key = (index, device)
                if isinstance(trigger, ThresholdTrigger):
                    state = Threshold(_ms(trigger.for_seconds))
                    heard = await values_between(
                        self._history, device, trigger.property, now - state.hold, now
                    )
                    if heard:
                        state.resume(
                            [(at, compares(v, trigger.op, trigger.value)) for at, v in heard]
                        )
                    scene.thresholds[key] = state
                    if state.due is not None:
                        self._set_timer(scene, key, state.due)
                elif isinstance(trigger, ChangedTrigger):
                    found = self._latest(*device).get(trigger.property)
                    scene.changes[key] = Changed() if found is None else Changed(found.value)
                elif isinstance(trigger, NoDataTrigger):
                    if last_heard is None:
                        last_heard = await self._history.latest_values()
                    times = [at for _, at in last_heard.get(device, {}).values()]
                    silence = Silence(_ms(trigger.for_seconds), max(times, default=now))
                    scene.silences[key] = silence
                    if silence.due is not None:
                        self._set_timer(scene, key, silence.due)

    # -- running ---------------------------------------------------------------------------

    def trigger(self, scene: RunningScene, data: dict[str, Any]) -> None:
        """A webhook's (or an operator's) trigger."""
        self._triggered(scene, data)

    def _triggered(self, scene: RunningScene, data: dict[str, Any]) -> None:
        scene.counters.triggered += 1
        if scene.groups:  # (their members are asked of the registry first)
            self._spawn(self._admit_with_members(scene, data))
        else:
            self._admit(scene, data, {})

    async def _admit_with_members(self, scene: RunningScene, data: dict[str, Any]) -> None:
        members: dict[str, list[DeviceKey] | str] = {}
        for group in scene.groups:
            try:
                members[group] = await self._members(group, scene.stored.tenant)
            except HongshanError as exc:  # (a group deleted since: the condition cannot hold)
                members[group] = str(exc)
        self._admit(scene, data, members)

    def _admit(
        self,
        scene: RunningScene,
        data: dict[str, Any],
        members: Mapping[str, list[DeviceKey] | str],
    ) -> None:
        """Start a run for a trigger, unless the scene's conditions or its mode stop it."""
        at = self.clock.now()
        stopped = self._stopped_by(scene, members)
        if stopped is not None:
            why, condition = stopped
            scene.did_not_run(at, data, why, condition)
            return
        if self._scenes.get(scene.id) is not scene:
            return
        mode = scene.mode
        under_way = len(scene.runs_under_way)
        if mode == "single" and under_way:
            scene.did_not_run(at, data, "single: a run is under way")
            return
        if mode == "restart":
            for task in scene.runs_under_way:
                task.cancel()
        elif mode == "queued" and under_way:
            if under_way + len(scene.queue) >= scene.max:
                scene.did_not_run(at, data, f"queued: {scene.max} runs under way and waiting")
                return
            scene.queue.append(data)
            return
        elif mode == "parallel" and under_way >= scene.max:
            scene.did_not_run(at, data, f"parallel: {scene.max} runs under way")
            return
        self._start(scene, data, 0, None)

    def resume(self, scene: RunningScene, wait_id: int, due: int, step: int, data: Any) -> None:
        """A run that was waiting in a delay when the platform stopped: it goes on with
        ``step`` at ``due`` (at once when that is past), what it did before not done again."""
        self._start(scene, data, step, (wait_id, due))

    def _start(
        self,
        scene: RunningScene,
        data: dict[str, Any],
        first: int,
        wait: tuple[int, int] | None,
    ) -> None:
        record = RunRecord(
            at=self.clock.now(), trigger=data, steps_done=first, resumed=wait is not None
        )
        scene.started(record)
        task = self._spawn(self._run(scene, record, data, first, wait))
        scene.runs_under_way.add(task)
        task.add_done_callback(lambda done: self._finished(scene, done))

    def _finished(self, scene: RunningScene, task: asyncio.Task[None]) -> None:
        scene.runs_under_way.discard(task)
        if (
            scene.queue
            and not scene.runs_under_way
            and not self._stopping
            and self._scenes.get(scene.id) is scene
        ):
            self._start(scene, scene.queue.popleft(), 0, None)

    async def _run(
        self,
        scene: RunningScene,
        record: RunRecord,
        data: dict[str, Any],
        first: int,
        wait: tuple[int, int] | None,
    ) -> None:
        waiting = None
        try:
            if wait is not None:
                waiting = wait[0]
                record.state = "waiting"
                await self._until(wait[1])
                waiting = None
                await self._waits.drop_wait(wait[0])
                record.state = "running"
            for index in range(first, len(scene.steps)):
                step = scene.steps[index]
                if isinstance(step, Delay):
                    due = self.clock.now() + step.ms
                    record.state = "waiting"
                    waiting = await self._waits.add_wait(scene.id, due, index + 1, data)
                    await self._until(due)
                    wait_id, waiting = waiting, None
                    await self._waits.drop_wait(wait_id)
                    record.state = "running"
                else:
                    await self._act(scene, record, step, data)
                record.steps_done = index + 1
            record.state = "done"
        except asyncio.CancelledError:
            record.state = "stopped" if self._stopping else "cancelled"
            if waiting is not None and not self._stopping:
                with contextlib.suppress(Exception):
                    await self._waits.drop_wait(waiting)
            raise

    async def _act(
        self, scene: RunningScene, record: RunRecord, action: Action, data: dict[str, Any]
    ) -> None:
        device = None
        if isinstance(data.get("productKey"), str) and isinstance(data.get("deviceName"), str):
            device = DeviceRef(data["productKey"], data["deviceName"])
        fired = Fired(
            scene.id, scene.name, f"$scenes/{scene.id}", data, data, 0, device=device, by="scene"
        )
        try:
            pending = action.start(data, fired)
            if pending is not None:
                await pending
        except Exception as exc:  # one action's failure never stops the run
            if isinstance(exc, HongshanError):
                error = str(exc)
            else:
                error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "scene %s (%s): %s failed", scene.id, scene.name, action.kind, exc_info=exc
                )
            scene.failed(self.clock.now(), record, action.kind, error)

    async def _until(self, due: int) -> None:
        if due <= self.clock.now():
            return
        woken = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.clock.call_at(due, wake)
        try:
            await woken
        finally:
            timer.cancel()

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- conditions ------------------------------------------------------------------------

    def _stopped_by(
        self, scene: RunningScene, members: Mapping[str, list[DeviceKey] | str]
    ) -> tuple[str, str] | None:
        """Why the scene's conditions stop a run now, and which; None when they hold
        (``members``: the groups' its conditions read, or why there are none)."""
        conditions = scene.stored.spec.conditions
        for condition in conditions.all:
            why = self._why_not(scene, condition, members)
            if why is not None:
                return why, describe(condition)
        if conditions.any:
            whys = []
            for condition in conditions.any:
                why = self._why_not(scene, condition, members)
                if why is None:
                    return None
                whys.append(why)
            return "none of its any conditions holds: " + "; ".join(whys), "any"
        return None

    def _why_not(
        self,
        scene: RunningScene,
        condition: ConditionSpec,
        members: Mapping[str, list[DeviceKey] | str],
    ) -> str | None:
        match condition:
            case TimeWindowCondition(window=text):
                if scene.windows[text].holds(self.clock.now(), self.zone):
                    return None
                return f"outside {text} ({self.zone})"
            case DeviceValueCondition():
                found = self._latest(condition.product_key, condition.device_name).get(
                    condition.property
                )
                value = None if found is None else found.value
                if compares(value, condition.op, condition.value):
                    return None
                return (
                    f"{condition.product_key}/{condition.device_name} {condition.property} is"
                    f" {_shown(value)}, not {condition.op} {condition.value!r}"
                )
            case GroupAggregateCondition():
                found_members = members.get(condition.group, [])
                if isinstance(found_members, str):
                    return found_members
                aggregate = _aggregate(
                    condition.fn,
                    [self._latest(*member).get(condition.property) for member in found_members],
                )
                if compares(aggregate, condition.op, condition.value):
                    return None
                return (
                    f"{condition.fn} of {condition.property} over group {condition.group} is"
                    f" {_shown(aggregate)}, not {condition.op} {condition.value:g}"
                )
        return None  # (unreachable: the union is matched whole)


def describe(condition: ConditionSpec) -> str:
    """A condition in a few words, as a trace names it."""
    match condition:
        case TimeWindowCondition(window=text):
            return f"timeWindow {text}"
        case DeviceValueCondition():
            return (
                f"deviceValue {condition.product_key}/{condition.device_name}"
                f" {condition.property} {condition.op} {condition.value!r}"
            )
        case GroupAggregateCondition():
            return (
                f"groupAggregate {condition.fn}({condition.property}) of {condition.group}"
                f" {condition.op} {condition.value:g}"
            )


def _aggregate(fn: str, found: list[PropertyValue | None]) -> float | None:
    numbers = [
        float(item.value)
        for item in found
        if item is not None
        and isinstance(item.value, int | float)
        and not isinstance(item.value, bool)
    ]
    if fn == "count":
        return float(len(numbers))
    if not numbers:
        return None
    if fn == "avg":
        return sum(numbers) / len(numbers)
    if fn == "sum":
        return sum(numbers)
    return min(numbers) if fn == "min" else max(numbers)


def _shown(value: Any) -> str:
    return "nothing (no value yet)" if value is None else repr(value)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _data(trigger: Any, device: DeviceKey, **more: Any) -> dict[str, Any]:
    """What a device trigger gives the run (its actions' output, the trace's ``trigger``)."""
    return {
        "trigger": trigger_kind(trigger),
        "productKey": device[0],
        "deviceName": device[1],
        **({"property": trigger.property} if hasattr(trigger, "property") else {}),
        **more,
    }
