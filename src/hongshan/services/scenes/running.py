"""A scene as the engine runs it (``RunningScene``): its steps built, its time windows parsed,
its triggers' state per device, its runs under way and waiting, its counters and the trace of
its last runs and non-runs; and how one is built from a stored scene (``build_scene``)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec

from hongshan.rules.definition import ActionSpec
from hongshan.rules.scene import (
    DelayStep,
    DeviceTrigger,
    GroupAggregateCondition,
    StoredScene,
    TimeWindowCondition,
    TriggerSpec,
)
from hongshan.rules.scene_triggers import Changed, Silence, Threshold
from hongshan.rules.windows import TimeWindow
from hongshan.services.rules.actions import Action
from hongshan.services.rules.running import ActionNeeds, build_action

TRACE_LENGTH = 20  # runs kept, and non-runs kept, per scene

DeviceKey = tuple[str, str]
StateKey = tuple[int, DeviceKey]  # (the trigger's index, the device)


@dataclass(frozen=True, slots=True)
class Delay:
    ms: int


Step = Action | Delay


class Counters(msgspec.Struct, kw_only=True, rename="camel"):
    """What a scene did since it was (re)started: triggers heard; runs started; triggers its
    conditions stopped (``notRun``); triggers its mode turned away (``skipped``: single with a
    run under way, queued or parallel at its max); failed actions, the last one's error."""

    triggered: int = 0
    ran: int = 0
    not_run: int = 0
    skipped: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: int | None = None


RunState = Literal["running", "waiting", "done", "cancelled", "stopped"]


class RunRecord(msgspec.Struct, kw_only=True, rename="camel"):
    """One run: when it started (ms), what triggered it (the trigger's data), how far it got
    (steps done, delays included), its state (``waiting``: in a delay; ``cancelled``: by its
    mode's restart or the scene's change; ``stopped``: the platform stopped, a delay under way
    goes on at the next start) and its actions' errors."""

    at: int
    trigger: dict[str, Any]
    state: RunState = "running"
    steps_done: int = 0
    resumed: bool = False
    errors: list[str] = []


class NonRun(msgspec.Struct, kw_only=True):
    """A trigger that started no run: ``reason`` ``condition`` (``condition`` is the one that
    did not hold, ``why`` says so) or ``mode``."""

    at: int
    trigger: dict[str, Any]
    reason: Literal["condition", "mode"]
    why: str
    condition: str | None = None


class SceneTrace(msgspec.Struct, kw_only=True, rename="camel"):
    """A scene's counters, how many triggers wait in its queue (mode ``queued``), and its last
    runs and non-runs, newest first; all empty for a scene that is not running (disabled)."""

    id: int
    running: bool
    counters: Counters
    queued: int
    runs: list[RunRecord]
    non_runs: list[NonRun]


@dataclass(eq=False, kw_only=True)
class RunningScene:
    """One enabled scene in the engine. Owns its triggers' state (per trigger and device), the
    timers of those and of its schedules, its runs under way and queued, its counters and its
    trace; never stores itself and never runs itself (``SceneEngine`` does both)."""

    id: int
    name: str
    triggers: list[TriggerSpec]
    stored: StoredScene
    steps: list[Step]
    windows: dict[str, TimeWindow]
    groups: tuple[str, ...]  # the groups its conditions read
    thresholds: dict[StateKey, Threshold] = field(default_factory=dict)
    changes: dict[StateKey, Changed] = field(default_factory=dict)
    silences: dict[StateKey, Silence] = field(default_factory=dict)
    timers: dict[tuple[int, DeviceKey | None], Any] = field(default_factory=dict)
    runs_under_way: set[asyncio.Task[None]] = field(default_factory=set)
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    heard_early: list[Any] | None = field(default_factory=list)  # None once primed
    counters: Counters = field(default_factory=Counters)
    runs: deque[RunRecord] = field(default_factory=lambda: deque(maxlen=TRACE_LENGTH))
    non_runs: deque[NonRun] = field(default_factory=lambda: deque(maxlen=TRACE_LENGTH))

    @property
    def mode(self) -> str:
        return self.stored.spec.mode

    @property
    def max(self) -> int:
        return self.stored.spec.max

    def __post_init__(self) -> None:
        self.device_triggers: list[tuple[int, DeviceTrigger]] = [
            (index, trigger)
            for index, trigger in enumerate(self.triggers)
            if isinstance(trigger, DeviceTrigger)
        ]  # (each with its index: the key of its state, with the device)

    def started(self, record: RunRecord) -> None:
        """A run started (its record goes on being filled as it runs)."""
        self.counters.ran += 1
        self.runs.append(record)

    def did_not_run(
        self, at: int, trigger: dict[str, Any], why: str, condition: str | None = None
    ) -> None:
        if condition is None:
            self.counters.skipped += 1
            self.non_runs.append(NonRun(at=at, trigger=trigger, reason="mode", why=why))
            return
        self.counters.not_run += 1
        self.non_runs.append(
            NonRun(at=at, trigger=trigger, reason="condition", why=why, condition=condition)
        )

    def failed(self, at: int, record: RunRecord, action: str, error: str) -> None:
        self.counters.failed += 1
        self.counters.last_error = f"{action}: {error}"
        self.counters.last_error_at = at
        record.errors.append(f"{action}: {error}")

    def trace(self) -> SceneTrace:
        return SceneTrace(
            id=self.id,
            running=True,
            counters=msgspec.structs.replace(self.counters),
            queued=len(self.queue),
            runs=[
                msgspec.structs.replace(run, errors=list(run.errors)) for run in reversed(self.runs)
            ],
            non_runs=list(reversed(self.non_runs)),
        )


def not_running(scene_id: int) -> SceneTrace:
    return SceneTrace(
        id=scene_id, running=False, counters=Counters(), queued=0, runs=[], non_runs=[]
    )


S = TypeVar("S", bound=RunningScene)


def _step(spec: ActionSpec | DelayStep, needs: ActionNeeds, secret: str, tenant: str) -> Step:
    if isinstance(spec, DelayStep):
        return Delay(round(spec.seconds * 1000))
    return build_action(spec, needs, secret, tenant)


def build_scene(stored: StoredScene, needs: ActionNeeds) -> RunningScene:
    """A stored scene made ready to run (it was checked when it was stored)."""
    steps = [_step(step, needs, stored.secret, stored.tenant) for step in stored.spec.actions]
    return scene_of(RunningScene, stored, steps)


def scene_of(kind: type[S], stored: StoredScene, steps: list[Step], **more: Any) -> S:
    """A scene of ``kind`` (``RunningScene`` or a kind of it) with its ``steps`` built, its
    time windows parsed and its groups named (``more``: fields of its own kind)."""
    spec = stored.spec
    conditions = [*spec.conditions.all, *spec.conditions.any]
    return kind(
        id=stored.id,
        name=spec.name,
        triggers=list(spec.triggers),
        stored=stored,
        steps=steps,
        windows={
            c.window: TimeWindow.parse(c.window)
            for c in conditions
            if isinstance(c, TimeWindowCondition)
        },
        groups=tuple(
            sorted({c.group for c in conditions if isinstance(c, GroupAggregateCondition)})
        ),
        **more,
    )
