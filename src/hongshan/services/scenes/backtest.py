"""``SceneBacktester``: a scene run over what the history recorded in a range — when it would
have run, by which trigger, whether its conditions held, and what each step would have done —
and two versions of a scene compared on the same range.

The scene runs in a ``SceneEngine`` of its own, the live engine's deciding code as it is, with
three things in place of the live ones: its clock is the recorded clock (``RecordedClock``:
set to each replayed uplink's time, its timers — holds, silences, cron, the sun, delays — gone
off in order in between), its ``latest`` values are those of the replay so far (as the twin had
them then), and its steps are described rather than done (``services.rules.described``).
Nothing is sent, published or stored.

What cannot be replayed: a webhook's (or an operator's) trigger, which the history never kept;
a group's members as they were (its members now are asked); a ``changed`` trigger's value
before the range (its first value in the range is no change). A hold under way at the range's
start goes on from the values before it (the engine's priming, read from the history); a
silence counts from the range's start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.messages import PropertyValues, Uplink
from hongshan.rules.definition import ActionSpec
from hongshan.rules.scene import (
    DelayStep,
    DeviceTrigger,
    DeviceValueCondition,
    GroupAggregateCondition,
    SceneSpec,
    StoredScene,
    WebhookTrigger,
)
from hongshan.rules.sun import Place
from hongshan.services.rules.actions import Fired, Pending
from hongshan.services.rules.backtest import (
    DEFAULT_LIMIT,
    MAX_SECONDS,
    MAX_VALUES,
    YIELD_EVERY,
    Replayed,
    check_range,
)
from hongshan.services.rules.described import describe
from hongshan.services.scenes.engine import History, SceneEngine
from hongshan.services.scenes.recorded import (
    HistoryAtStart,
    RecordedClock,
    RecordedWaits,
    ReplayedTwin,
)
from hongshan.services.scenes.running import (
    Delay,
    DeviceKey,
    RunningScene,
    RunRecord,
    Step,
    scene_of,
)

SETTLE_TURNS = 1_000  # turns of the loop given at once to runs that wait on no timer


class Recorded(History, Protocol):
    """What a scene's backtest reads of the history: its replay, and what the engine's
    priming reads (``store.history``)."""

    def replay(
        self,
        start: int,
        end: int,
        *,
        product: str | None = None,
        device: tuple[str, str] | None = None,
    ) -> AsyncIterator[list[Uplink]]: ...


class WouldRun(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A trigger of the scene over the range: when (the recorded ms), the trigger's data (its
    ``trigger`` kind, the device, the value), whether a run started (``ran``) and if not why
    (``reason`` ``condition``: ``condition`` is the one that did not hold, ``why`` says so;
    ``mode``: a run under way turned it away); a run's ``steps`` (each action described, at
    the recorded time it would have acted: delays move it) and its ``state`` at the range's
    end (``done``, ``cancelled`` by a restart, ``waiting`` in a delay past the end)."""

    at: int
    trigger: dict[str, Any]
    ran: bool
    reason: str | None = None
    why: str | None = None
    condition: str | None = None
    steps: list[dict[str, Any]] = []
    state: str | None = None


class SceneTally(msgspec.Struct, kw_only=True, rename="camel"):
    """One scene over the range: triggers heard, runs it would have started, triggers its
    conditions stopped (``notRun``) and its mode turned away (``skipped``), and the first
    ``limit`` triggers, run or not (``runs``)."""

    name: str
    triggered: int
    ran: int
    not_run: int
    skipped: int
    runs: list[WouldRun]


class SceneBacktest(Replayed, kw_only=True, rename="camel"):
    """What a scene's backtest found. With ``against``: ``onlyScene`` (runs the scene
    starts and the other version does not, at the same time by the same trigger and device),
    ``onlyAgainst`` (the other way), listed up to the limit and counted whole (``counts``)."""

    scene: SceneTally
    against: SceneTally | None = None
    only_scene: list[WouldRun] = []
    only_against: list[WouldRun] = []


class _Described:
    """An action step said, not done: what it would have done, in its run's report."""

    def __init__(self, spec: ActionSpec, number: int, scene: RecordedScene) -> None:
        self.kind = str(type(spec).__struct_config__.tag)
        self._spec = spec
        self._number = number
        self._scene = scene

    def start(self, output: dict[str, Any], fired: Fired) -> Pending | None:
        self._scene.acted(output, {"step": self._number, **describe(self._spec, output)})
        return None


@dataclass(eq=False, kw_only=True)
class RecordedScene(RunningScene):
    """A scene in a backtest's engine: its triggers, runs and non-runs reported as they come
    (the first ``limit`` listed, all counted); when ``compared``, the runs since the last
    ``_Compare.take`` kept (``fresh``)."""

    limit: int
    clock: RecordedClock
    compared: bool = False
    listed: list[WouldRun] = field(default_factory=list)
    fresh: list[WouldRun] = field(default_factory=list)
    _runs: dict[int, tuple[RunRecord, WouldRun]] = field(default_factory=dict)

    def started(self, record: RunRecord) -> None:
        super().started(record)
        run = WouldRun(at=record.at, trigger=record.trigger, ran=True)
        self._runs[id(record.trigger)] = (record, run)
        self._list(run)
        if self.compared:
            self.fresh.append(run)

    def did_not_run(
        self, at: int, trigger: dict[str, Any], why: str, condition: str | None = None
    ) -> None:
        super().did_not_run(at, trigger, why, condition)
        reason = "mode" if condition is None else "condition"
        self._list(
            WouldRun(at=at, trigger=trigger, ran=False, reason=reason, why=why, condition=condition)
        )

    def acted(self, data: dict[str, Any], described: dict[str, Any]) -> None:
        found = self._runs.get(id(data))
        if found is not None:
            found[1].steps.append({"at": self.clock.now(), **described})

    def settle(self) -> None:
        """The runs' states as they are now; forget those that are over."""
        for key, (record, run) in list(self._runs.items()):
            run.state = record.state
            if record.state in ("done", "cancelled"):
                del self._runs[key]

    def _list(self, run: WouldRun) -> None:
        if len(self.listed) < self.limit:
            self.listed.append(run)

    def tally(self) -> SceneTally:
        self.settle()
        counters = self.counters
        return SceneTally(
            name=self.name,
            triggered=counters.triggered,
            ran=counters.ran,
            not_run=counters.not_run,
            skipped=counters.skipped,
            runs=self.listed,
        )


def _steps(spec: SceneSpec, scene: RecordedScene) -> list[Step]:
    return [
        Delay(round(step.seconds * 1000))
        if isinstance(step, DelayStep)
        else _Described(step, number, scene)
        for number, step in enumerate(spec.actions, 1)
    ]


def _key(run: WouldRun) -> tuple[Any, ...]:
    trigger = run.trigger
    return (
        run.at,
        trigger.get("trigger"),
        trigger.get("productKey"),
        trigger.get("deviceName"),
    )


class _Compare:
    """The runs of two versions paired as the recorded time goes on: runs at the same time
    by the same trigger (and device) are the same; the rest are one version's only."""

    def __init__(self, scenes: list[RecordedScene], limit: int) -> None:
        self._scenes = scenes
        self._limit = limit
        self.only: tuple[list[WouldRun], list[WouldRun]] = ([], [])
        self.counts = {"onlyScene": 0, "onlyAgainst": 0, "same": 0}

    def take(self, before: int | None) -> None:
        """Pair the runs started before ``before`` (all: None)."""
        mine, theirs = (self._before(scene, before) for scene in self._scenes)
        if not mine and not theirs:
            return
        left = Counter(_key(run) for run in theirs)
        for run in mine:
            key = _key(run)
            if left[key] > 0:
                left[key] -= 1
                self.counts["same"] += 1
            else:
                self._only(0, run)
        for run in theirs:
            key = _key(run)
            if left[key] > 0:
                left[key] -= 1
                self._only(1, run)

    def _before(self, scene: RecordedScene, before: int | None) -> list[WouldRun]:
        fresh = scene.fresh
        if not fresh or (before is not None and fresh[0].at >= before):
            return []
        if before is None or fresh[-1].at < before:
            scene.fresh = []
            return fresh
        split = next(i for i, run in enumerate(fresh) if run.at >= before)
        scene.fresh = fresh[split:]
        return fresh[:split]

    def _only(self, side: int, run: WouldRun) -> None:
        self.counts[("onlyScene", "onlyAgainst")[side]] += 1
        if len(self.only[side]) < self._limit:
            self.only[side].append(run)


def _products(specs: Iterable[SceneSpec]) -> set[str | None]:
    """The products whose history the scenes hear (None: every device's, for a group)."""
    products: set[str | None] = set()
    for spec in specs:
        for trigger in spec.triggers:
            if isinstance(trigger, DeviceTrigger):
                products.add(trigger.device.product_key)
        for condition in [*spec.conditions.all, *spec.conditions.any]:
            if isinstance(condition, DeviceValueCondition):
                products.add(condition.product_key)
            elif isinstance(condition, GroupAggregateCondition):
                products.add(None)
    return products


@dataclass(kw_only=True)
class _Run:
    """One backtest under way: its engine, its clock, its scenes."""

    engine: SceneEngine
    clock: RecordedClock
    waits: RecordedWaits
    scenes: list[RecordedScene]
    compare: _Compare | None
    replayed: ReplayedTwin

    async def settle(self) -> None:
        """Let the runs go on until each is done or waits on the recorded clock."""
        turns = 0
        await asyncio.sleep(0)
        while self.engine.busy > self.waits.waiting:
            turns += 1
            # (a priming or a group reads the registry or the history: waited for, not spun)
            await asyncio.sleep(0 if turns < SETTLE_TURNS else 0.001)

    async def until(self, at: int) -> None:
        """The timers due by ``at`` gone off in order (each run they wake let go on), then
        the clock at ``at``."""
        clock = self.clock
        due = clock.next_due()
        while due is not None and due <= at:
            self.take(due)
            clock.fire_next()
            if self.engine.busy:
                await self.settle()
            due = clock.next_due()
        self.take(at)
        clock.move_to(at)

    def take(self, at: int) -> None:
        if self.compare is not None and at > self.clock.now():
            self.compare.take(at)


class SceneBacktester:
    """Runs scenes' backtests: replays the history's range for the devices a scene hears
    (the products its triggers and conditions name, else all) into an engine of its own on
    the recorded clock (module docstring). One backtest at a time (a second waits): each is
    bounded by the rules' backtest's ``MAX_RANGE``, ``MAX_VALUES`` and ``MAX_SECONDS`` and
    gives the event loop back every ``YIELD_EVERY`` uplinks.
    Owns no scene and does nothing a scene does; never sends, publishes or stores."""

    def __init__(
        self,
        history: Recorded,
        *,
        zone: dt.tzinfo,
        place: Place | None,
        members: Callable[[str, str], Awaitable[list[DeviceKey]]],  # (name, tenant)
        devices_of: Callable[[str], Iterable[DeviceKey]],
    ) -> None:
        self._history = history
        self._zone = zone
        self._place = place
        self._members = members
        self._devices_of = devices_of
        self._one_at_a_time = asyncio.Semaphore(1)

    async def run(
        self,
        scene: SceneSpec,
        start: int,
        end: int,
        *,
        against: SceneSpec | None = None,
        limit: int = DEFAULT_LIMIT,
        max_values: int = MAX_VALUES,
        max_seconds: float = MAX_SECONDS,
        tenant: str = DEFAULT_TENANT,
    ) -> SceneBacktest:
        """The scene (and ``against``) over [start, end) (ms); ``HistoryProblem`` (400) for
        a range or limit that cannot be. The scenes were checked (``SceneBook.check``)."""
        check_range(start, end, limit)
        specs = [scene] if against is None else [scene, against]
        async with self._one_at_a_time:
            run = self._engine(specs, start, limit, tenant)
            try:
                return await self._replay(run, specs, start, end, limit, max_values, max_seconds)
            finally:
                await run.engine.stop()

    def _engine(self, specs: list[SceneSpec], start: int, limit: int, tenant: str) -> _Run:
        clock = RecordedClock(start - 1)  # (primed with what was recorded before the start)
        waits = RecordedWaits()
        replayed = ReplayedTwin()
        engine = SceneEngine(
            clock=clock,
            zone=self._zone,
            place=self._place,
            latest=replayed.latest,
            members=self._members,
            devices_of=self._devices_of,
            history=HistoryAtStart(self._history),
            waits=waits,
        )
        scenes = []
        for index, spec in enumerate(specs):
            stored = StoredScene(
                id=index,
                spec=spec,
                secret="",
                token="",
                created_at=0,
                updated_at=0,
                tenant=tenant,  # (its groups are that tenant's)
            )
            recorded = scene_of(
                RecordedScene, stored, [], limit=limit, clock=clock, compared=len(specs) == 2
            )
            recorded.steps = _steps(spec, recorded)
            scenes.append(recorded)
        compare = _Compare(scenes, limit) if len(specs) == 2 else None
        return _Run(
            engine=engine,
            clock=clock,
            waits=waits,
            scenes=scenes,
            compare=compare,
            replayed=replayed,
        )

    async def _replay(
        self,
        run: _Run,
        specs: list[SceneSpec],
        start: int,
        end: int,
        limit: int,
        max_values: int,
        max_seconds: float,
    ) -> SceneBacktest:
        engine, clock, replayed = run.engine, run.clock, run.replayed
        for recorded in run.scenes:
            engine.put(recorded)
        await run.settle()  # (primed)
        products = _products(specs)
        uplinks = values = 0
        stopped_at: int | None = None
        deadline = time.monotonic() + max_seconds
        if products:
            product = next(iter(products)) if len(products) == 1 else None
            async for chunk in self._history.replay(start, end, product=product):
                for done, uplink in enumerate(chunk, start=1):
                    at = uplink.received
                    if at > clock.now():
                        due = clock.next_due()
                        if due is not None and due <= at:
                            await run.until(at)
                        else:
                            run.take(at)
                            clock.move_to(at)
                    if type(uplink) is PropertyValues:
                        replayed.take(uplink)
                    engine.on_uplink(uplink)
                    if engine.busy > run.waits.waiting:
                        await run.settle()
                    if done % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # (the live town goes on meanwhile)
                for recorded in run.scenes:
                    recorded.settle()
                uplinks += len(chunk)
                values += sum(len(getattr(uplink, "values", ())) for uplink in chunk)
                if values + uplinks >= max_values or time.monotonic() > deadline:
                    stopped_at = chunk[-1].received + 1
                    break
        last = end if stopped_at is None else stopped_at
        await run.until(last - 1)  # (what falls due up to the range's end, in it)
        if run.compare is not None:
            run.compare.take(None)
        result = SceneBacktest(
            start=start,
            end=last,
            uplinks=uplinks,
            values=values,
            complete=stopped_at is None,
            stopped_at=stopped_at,
            scene=run.scenes[0].tally(),
            notes=_notes(specs, products, uplinks),
        )
        if run.compare is not None:
            result.against = run.scenes[1].tally()
            result.only_scene, result.only_against = run.compare.only
            result.counts = run.compare.counts
        return result


def _notes(specs: list[SceneSpec], products: set[str | None], uplinks: int) -> list[str]:
    notes = []
    for spec in specs:
        if any(isinstance(trigger, WebhookTrigger) for trigger in spec.triggers):
            notes.append(
                f"{spec.name!r}: its webhook trigger cannot be replayed (the history keeps no"
                " webhook's call): only its other triggers were"
            )
    if products and not uplinks:
        named = ", ".join(sorted(p or "any product" for p in products))
        notes.append(f"nothing was recorded in the range for the devices of {named}")
    return notes
