"""``AlarmService``: alarms raised, changed and listed, their escalation timers, and each
change told to the rules and the notifications."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import msgspec

from hongshan.alarms.escalation import due, next_wake
from hongshan.alarms.model import (
    Alarm,
    AlarmFilter,
    Change,
    Escalation,
    Note,
    Operation,
    Originator,
    Severity,
    escalation_problem,
    more_severe,
    raise_again,
    raised,
    transition,
)
from hongshan.alarms.routes import Owed, StoredRoute
from hongshan.messages import DeviceRef, EventRaised, Uplink
from hongshan.services.alarms.notify import AlarmNotifier
from hongshan.services.alarms.turns import Turns
from hongshan.things.model import RegistryError
from hongshan.things.tsl import ThingModel

log = logging.getLogger("hongshan.alarms")

MAX_TYPE = 128
MAX_NAME = 128  # who acknowledged, cleared, is assigned, wrote a note
MAX_NOTE = 4000
RETRY_AFTER = 1000  # ms before a timer whose alarm could not be read or kept tries again
DAY = 86_400_000  # ms
PRUNE_EVERY = 3600.0  # seconds between looks for cleared alarms past their retention
MAX_FOLDED = 1000  # repeats of one alarm kept in one write at most

EVENT_SEVERITY: dict[str, Severity] = {"error": "critical", "alert": "major"}
"""The severity of an alarm a device's thing-model event raises, by the event's TSL ``type``
(Alibaba's 故障 and 告警): an ``error`` is the device saying it has failed — it no longer does
its job (a lamp out, a meter not measuring) — so critical; an ``alert`` is the device warning
of a condition that needs someone's attention while it still works (a voltage out of range,
a door open), so major. ``info`` events raise none."""

STREAM = "$things/{pk}/{dn}/alarms"

Hear = Callable[[str, dict[str, Any], DeviceRef, int], None]
"""(topic, payload, device, depth): the rules engine hears an alarm's change
(``RuleEngine.on_platform``)."""


class AlarmStore(Protocol):
    """Where alarms are kept (``store.registry.alarms.AlarmTable``)."""

    async def keep(
        self, alarm: Alarm, owed: Sequence[Owed] = (), *, note: Note | None = None
    ) -> tuple[int, list[list[int | None]]]: ...

    async def open_of(self, product_key: str, device_name: str, type: str) -> Alarm | None: ...

    async def get(self, alarm_id: int) -> Alarm: ...

    async def list_alarms(self, where: AlarmFilter) -> tuple[list[Alarm], int]: ...

    async def list_open(self) -> list[Alarm]: ...

    async def prune(self, before: int) -> int: ...


class Things(Protocol):
    """What the alarms ask of the registry (``things.directory.Directory``)."""

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    def thing_model_of(self, product_key: str) -> ThingModel | None: ...


def _ms() -> int:
    return int(time.time() * 1000)


Key = tuple[str, str, str]
"""An alarm's device and type: (product key, device name, type). At most one is open."""


class _Raising(NamedTuple):
    """A raise asked, as ``raise_alarm`` was given it (checked)."""

    severity: Severity
    details: dict[str, Any]
    originator: Originator
    escalation: Escalation | None
    depth: int


class _Step(NamedTuple):
    """A change decided: the alarm before (None: raised) and after, what happened (an
    escalation and a reminder may fall due at once), who did it, how deep in rule actions,
    and the note it adds."""

    before: Alarm | None
    after: Alarm
    changes: list[Change]
    by: str
    depth: int = 0
    note: Note | None = None


Decide = Callable[[Alarm | None], _Step | None]
"""A change other than a raise, decided on the alarm as it is at its turn (None: the device and
type have none open); None: nothing to do."""


@dataclass(slots=True)
class _Job:
    """A change asked of the alarm of one key, waiting its turn: a raise (``raising``), or a
    change ``decide`` decides on alarm ``alarm_id`` (0: the open one). ``done`` answers the
    caller: the alarm after it (or as it was, when nothing was done)."""

    raising: _Raising | None = None
    alarm_id: int = 0
    decide: Decide | None = None
    done: asyncio.Future[Alarm | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Told(NamedTuple):
    """One change kept, to be told: the step it is of, which change, its payload, and the
    routes it is owed to."""

    step: _Step
    change: Change
    payload: dict[str, Any]
    routes: list[StoredRoute]


class AlarmService:
    """Raises, repeats, acknowledges, clears, assigns and annotates alarms — deciding each by
    ``hongshan.alarms`` (one open alarm per device and type; ThingsBoard's four statuses) and
    keeping it in the registry with the notifications it owes, in one transaction — and runs
    their escalation policies with timers computed from the kept times (so a restart goes on
    where it was, not from zero). Every change is told to the rules
    (``$things/{pk}/{dn}/alarms``) and to the notifier. Hears the bus's uplinks for a
    device's TSL ``alert`` and ``error`` events. Never sends a notification itself
    (``AlarmNotifier``) and never runs a rule.

    It keeps the open alarms in memory (loaded at start, changed with each change it keeps,
    which it alone makes), so a repeat reads nothing: it is one write. The changes of one
    alarm (of one device and type) are decided one after the other, each on the one before;
    those of different alarms never wait for each other (``Turns``). Repeats of an alarm
    that arrive while one of its writes is under way are folded into its next write — each
    still decided, told to the rules and owed to the notifier as a change of its own.

    ``raise_alarm`` and ``clear_alarm`` are the calls anything that raises alarms makes: the
    rules' and the scenes' alarm actions, the events, the API, and the products' alarm
    conditions (``conditions.AlarmConditions``)."""

    def __init__(
        self,
        store: AlarmStore,
        notifier: AlarmNotifier,
        *,
        things: Things,
        hear: Hear,
        clock: Callable[[], int] = _ms,
        keep_days: float = 365.0,
    ) -> None:
        """``keep_days``: how long a cleared alarm is kept (an open one always is)."""
        self._store = store
        self._keep_ms = int(keep_days * DAY)
        self.notifier = notifier
        self._things = things
        self._hear = hear
        # who else hears each change once kept, with the payload the rules read (the live
        # API); called in order, a fault of one stops nothing
        self.on_change: list[Callable[[Alarm, dict[str, Any]], None]] = []
        self._clock = clock
        self._open: dict[Key, Alarm] = {}  # the open alarms, as kept
        self._keys: dict[int, Key] = {}  # an open alarm's id -> its key
        self._turns: Turns[Key, _Job] = Turns(
            self._run, folds=lambda job: job.raising is not None, most=MAX_FOLDED
        )
        self._wakes: dict[int, int] = {}  # alarm id -> when (ms) its policy next wants something
        self._woken = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # each change kept, by (change, severity after it): what the metrics read
        self.changes: collections.Counter[tuple[str, str]] = collections.Counter()

    def open_by_severity(self) -> collections.Counter[str]:
        """How many alarms are open, by severity (read from memory: no query)."""
        return collections.Counter(alarm.severity for alarm in self._open.values())

    async def load(self) -> None:
        """The routes; the open alarms, and when each one's policy next wants something,
        from its kept times (alarms may be raised from now on)."""
        await self.notifier.load()
        for alarm in await self._store.list_open():
            self._remember(alarm)
            self._track(alarm)

    def start(self) -> None:
        """Run the timers (what fell due while the platform was down is done at once): once
        the rules that hear their changes run."""
        self._timer = asyncio.create_task(self._run_timers(), name="alarm timers")
        self._pruner = asyncio.create_task(self._prune_every(PRUNE_EVERY), name="alarm pruning")

    async def stop(self) -> None:
        for task in (self._timer, self._pruner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:  # (alarms of events heard: raised, not given up)
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._turns.drain()  # (changes asked: kept and told)
        await self.notifier.stop()

    # -- raising and clearing ----------------------------------------------------------------

    async def raise_alarm(
        self,
        device: DeviceRef,
        type: str,
        severity: Severity,
        details: dict[str, Any],
        originator: Originator,
        *,
        escalation: Escalation | None = None,
        depth: int = 0,
    ) -> Alarm:
        """Raise an alarm of ``type`` on ``device``: a new one (``raised``), or a repeat of the
        open one (``repeated``; its severity raised, never lowered). ``depth``: how many rule
        actions led here (the rules hear the change that deep). ``RegistryError`` (400) for a
        device that does not exist, an empty or long type, or a policy that cannot work."""
        _check_text("an alarm's type", type, MAX_TYPE)
        if not self._things.device_known(device.product, device.device):
            raise RegistryError(f"no device {device.device} in product {device.product}", "invalid")
        if escalation is not None:
            problem = escalation_problem(escalation)
            if problem is not None:
                raise RegistryError(problem, "invalid")
        raising = _Raising(severity, details, originator, escalation, depth)
        alarm = await self._ask((device.product, device.device, type), _Job(raising=raising))
        assert alarm is not None  # (a raise always gives one)
        return alarm

    async def clear_alarm(
        self, device: DeviceRef, type: str, *, by: str, depth: int = 0
    ) -> Alarm | None:
        """Clear the open alarm of ``type`` on ``device``; None when none is open."""

        def clear(alarm: Alarm | None) -> _Step | None:
            return None if alarm is None else self._moved(alarm, "clear", by, depth)

        return await self._ask((device.product, device.device, type), _Job(decide=clear))

    # -- an operator's changes ---------------------------------------------------------------

    async def acknowledge(self, alarm_id: int, *, by: str) -> Alarm:
        """``AlarmStateError`` (409) naming its status when it is acknowledged already."""
        _check_text("who acknowledges", by, MAX_NAME)
        return await self._ask_of(alarm_id, lambda a: self._moved(a, "acknowledge", by, 0))

    async def clear(self, alarm_id: int, *, by: str) -> Alarm:
        """``AlarmStateError`` (409) naming its status when it is cleared already."""
        _check_text("who clears", by, MAX_NAME)
        return await self._ask_of(alarm_id, lambda a: self._moved(a, "clear", by, 0))

    async def assign(self, alarm_id: int, assignee: str | None, *, by: str) -> Alarm:
        """Give the alarm to ``assignee`` (None: to nobody)."""
        if assignee is not None:
            _check_text("an assignee", assignee, MAX_NAME)

        def assign(alarm: Alarm) -> _Step:
            after = msgspec.structs.replace(alarm, assignee=assignee, updated_at=self._clock())
            return _Step(alarm, after, ["assigned"], by)

        return await self._ask_of(alarm_id, assign)

    async def add_note(self, alarm_id: int, text: str, *, by: str) -> Alarm:
        _check_text("a note", text, MAX_NOTE, lines=True)
        _check_text("a note's author", by, MAX_NAME)

        def annotate(alarm: Alarm) -> _Step:
            note = Note(at=self._clock(), by=by, text=text)
            after = msgspec.structs.replace(alarm, notes=[*alarm.notes, note], updated_at=note.at)
            return _Step(alarm, after, ["noted"], by, note=note)

        return await self._ask_of(alarm_id, annotate)

    async def get(self, alarm_id: int) -> Alarm:
        key = self._keys.get(alarm_id)
        return self._open[key] if key is not None else await self._store.get(alarm_id)

    def open_by_device(self) -> dict[tuple[str, str], tuple[Severity, int]]:
        """Each device with open alarms: the worst of their severities and how many there
        are (the console's map colours its markers by them), from memory."""
        worst: dict[tuple[str, str], tuple[Severity, int]] = {}
        for (pk, dn, _), alarm in self._open.items():
            seen = worst.get((pk, dn))
            if seen is None:
                worst[(pk, dn)] = (alarm.severity, 1)
            else:
                worst[(pk, dn)] = (more_severe(seen[0], alarm.severity), seen[1] + 1)
        return worst

    async def list_alarms(self, where: AlarmFilter) -> tuple[list[Alarm], int]:
        return await self._store.list_alarms(where)

    def _moved(self, alarm: Alarm, operation: Operation, by: str, depth: int) -> _Step:
        after = transition(alarm, operation, by=by, now=self._clock())
        return _Step(alarm, after, ["acknowledged" if operation == "acknowledge" else "cleared"],
                     by, depth)  # fmt: skip

    # -- turns: each alarm's changes in order, kept, told --------------------------------------

    async def _ask(self, key: Key, job: _Job) -> Alarm | None:
        self._turns.put(key, job)
        return await job.done

    async def _ask_of(self, alarm_id: int, decide: Callable[[Alarm], _Step | None]) -> Alarm:
        """A change of alarm ``alarm_id`` (``not_found`` when there is none), in the turn of
        its device and type."""
        key = self._keys.get(alarm_id)
        if key is None:  # (not open: read, for its device and type)
            alarm = await self._store.get(alarm_id)
            key = (alarm.product_key, alarm.device_name, alarm.type)

        def decided(alarm: Alarm | None) -> _Step | None:
            assert alarm is not None  # (by id: read, or not found)
            return decide(alarm)

        found = await self._ask(key, _Job(alarm_id=alarm_id, decide=decided))
        assert found is not None
        return found

    async def _run(self, key: Key, jobs: list[_Job]) -> None:
        """Do ``jobs`` (one, or raises folded) on the alarm of ``key``, and answer them. What
        fails (a change refused, the registry) fails them, and nothing of theirs is kept."""
        jobs = [job for job in jobs if not job.done.done()]  # (a caller gone before its turn)
        if not jobs:
            return
        try:
            try:
                results = await self._change(key, jobs)
            except RegistryError as exc:
                if exc.kind != "conflict":
                    raise
                # memory out of step with the registry (an insert kept whose answer was
                # lost): read what is open, and decide again on it
                found = await self._store.open_of(*key)
                if found is not None:
                    self._remember(found)
                results = await self._change(key, jobs)
        except Exception as exc:
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(exc)
            return
        for job, result in zip(jobs, results, strict=True):
            if not job.done.done():
                job.done.set_result(result)

    async def _change(self, key: Key, jobs: list[_Job]) -> list[Alarm | None]:
        """Decide the jobs on the alarm as it is, keep it with what it owes, remember and
        tell it; what each job's caller is answered."""
        current = self._open.get(key)
        job = jobs[0]
        if job.raising is not None:
            now = self._clock()
            steps = []
            for job in jobs:
                assert job.raising is not None  # (only raises are folded)
                steps.append(_raised(key, current, job.raising, now))
                current = steps[-1].after
        else:
            assert job.decide is not None
            if job.alarm_id and (current is None or current.id != job.alarm_id):
                current = await self._store.get(job.alarm_id)  # (a cleared one)
            step = job.decide(current)
            if step is None:  # nothing to do
                if current is not None:
                    self._track(current)
                return [current]
            steps = [step]
        return self._kept(key, steps, await self._keep(steps))

    async def _keep(self, steps: list[_Step]) -> tuple[list[_Told], int, list[list[int | None]]]:
        """The changes of ``steps`` kept, with the notifications they owe: what to tell, the
        alarm's id, and the deliveries owed for each change told that has routes."""
        now = self._clock()
        told = []
        for step in steps:
            for change in step.changes:
                payload = stream_payload(step.after, change, step.before, now, step.by)
                told.append(_Told(step, change, payload, self.notifier.wanting(step.after, change)))
        owed = [
            Owed([route.id for route in one.routes], one.change, one.payload)
            for one in told
            if one.routes
        ]
        alarm_id, deliveries = await self._store.keep(steps[-1].after, owed, note=steps[-1].note)
        return told, alarm_id, deliveries

    def _kept(
        self,
        key: Key,
        steps: list[_Step],
        kept: tuple[list[_Told], int, list[list[int | None]]],
    ) -> list[Alarm | None]:
        """Kept: remember the alarm (no await since it was kept: nothing comes in between),
        track its timer, tell each change in order; each step's alarm."""
        told, alarm_id, deliveries = kept

        def with_id(alarm: Alarm) -> Alarm:  # (an alarm inserted has its id only now)
            return alarm if alarm.id else msgspec.structs.replace(alarm, id=alarm_id)

        final = with_id(steps[-1].after)
        if final.open:
            self._remember(final)
        elif key in self._open and self._open[key].id == final.id:
            self._forget(key)
        self._track(final)
        owed = iter(deliveries)
        for one in told:
            alarm = with_id(one.step.after)
            one.payload["id"] = alarm_id
            self.changes[one.change, alarm.severity] += 1
            self._tell(alarm, one.payload, one.step.depth)
            if one.routes:
                self.notifier.send(one.routes, alarm, one.change, one.payload, next(owed))
        return [with_id(step.after) for step in steps]

    def _tell(self, alarm: Alarm, payload: dict[str, Any], depth: int) -> None:
        """The rules hear the change, then ``on_change`` (a fault of theirs never stops it)."""
        device = DeviceRef(alarm.product_key, alarm.device_name)
        topic = STREAM.format(pk=alarm.product_key, dn=alarm.device_name)
        try:
            self._hear(topic, payload, device, depth)
        except Exception:  # (a fault of the engine's: the alarm is kept all the same)
            log.exception("alarm %s: the rules could not hear its change", alarm.id)
        for listener in self.on_change:
            try:
                listener(alarm, payload)
            except Exception:
                log.exception("alarm %s: %r could not hear its change", alarm.id, listener)

    def _remember(self, alarm: Alarm) -> None:
        key = (alarm.product_key, alarm.device_name, alarm.type)
        self._open[key] = alarm
        self._keys[alarm.id] = key

    def _forget(self, key: Key) -> None:
        alarm = self._open.pop(key)
        self._keys.pop(alarm.id, None)

    # -- the timers ----------------------------------------------------------------------------

    def _track(self, alarm: Alarm) -> None:
        wake = next_wake(alarm)
        if wake is None:
            self._wakes.pop(alarm.id, None)
        else:
            self._wakes[alarm.id] = wake
        self._woken.set()

    async def prune(self) -> int:
        """Forget the alarms cleared longer ago than they are kept; how many went."""
        return await self._store.prune(self._clock() - self._keep_ms)

    async def _prune_every(self, seconds: float) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # (the database's, say): tried again at the next turn
                log.exception("alarms: forgetting cleared alarms failed")
            await asyncio.sleep(seconds)

    async def _run_timers(self) -> None:
        while True:
            self._woken.clear()
            now = self._clock()
            for alarm_id in [i for i, at in self._wakes.items() if at <= now]:
                del self._wakes[alarm_id]  # (tracked again once done)
                self._due(alarm_id)
            if self._wakes:
                wait = max(0.0, (min(self._wakes.values()) - self._clock()) / 1000)
            else:
                wait = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._woken.wait()

    def _due(self, alarm_id: int) -> None:
        """Escalate or remind the open alarm ``alarm_id``, in its turn."""
        key = self._keys.get(alarm_id)
        if key is None:  # (no longer open: nothing is due)
            return

        def escalate(alarm: Alarm | None) -> _Step | None:
            assert alarm is not None
            after, changes = due(alarm, self._clock())
            return _Step(alarm, after, changes, "escalation") if changes else None

        job = _Job(alarm_id=alarm_id, decide=escalate)
        job.done.add_done_callback(functools.partial(self._due_done, alarm_id))
        self._turns.put(key, job)

    def _due_done(self, alarm_id: int, done: asyncio.Future[Alarm | None]) -> None:
        exc = None if done.cancelled() else done.exception()
        if exc is None or isinstance(exc, RegistryError):  # (done, or the alarm gone)
            return
        # the store failing: tried again, never lost
        log.error("alarm %s: its escalation could not be done now", alarm_id, exc_info=exc)
        self._wakes[alarm_id] = self._clock() + RETRY_AFTER
        self._woken.set()

    # -- a device's thing-model events ---------------------------------------------------------

    def on_uplink(self, uplink: Uplink) -> None:
        """A TSL ``alert`` or ``error`` event raises an alarm of the event's identifier."""
        if not isinstance(uplink, EventRaised):
            return
        model = self._things.thing_model_of(uplink.device.product)
        event = None if model is None else model.event_map.get(uplink.event)
        if event is None or event.type not in EVENT_SEVERITY:
            return
        raising = self.raise_alarm(
            uplink.device,
            event.identifier,
            EVENT_SEVERITY[event.type],
            dict(uplink.params),
            Originator(kind="event", id=event.identifier),
        )
        self._spawn(raising, f"event {event.identifier} of {uplink.device}")

    def _spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("alarm of %s not raised", what, exc_info=task.exception())

        task.add_done_callback(done)


def stream_payload(
    alarm: Alarm, change: Change, before: Alarm | None, now: int, by: str
) -> dict[str, Any]:
    """What the rules read on ``$things/{pk}/{dn}/alarms`` and a webhook receives: the
    alarm's fields, what changed and who changed it (``by``: the name an operator gave, or
    ``rule:<id>``, ``event:<identifier>``, ``api:<name>``, ``escalation``), and its severity
    and status before."""
    fields: dict[str, Any] = msgspec.to_builtins(alarm)
    return {
        **fields,
        "ts": now,
        "change": change,
        "by": by,
        "previousSeverity": None if before is None else before.severity,
        "previousStatus": None if before is None else before.status,
    }


def _raised(key: Key, open: Alarm | None, raising: _Raising, now: int) -> _Step:
    """A raise decided: a new alarm when none is open, else a repeat of the open one."""
    if open is None:
        product_key, device_name, type = key
        alarm = raised(
            product_key=product_key,
            device_name=device_name,
            type=type,
            severity=raising.severity,
            originator=raising.originator,
            details=raising.details,
            escalation=raising.escalation,
            now=now,
        )
        change: Change = "raised"
    else:
        alarm = raise_again(
            open,
            severity=raising.severity,
            details=raising.details,
            escalation=raising.escalation,
            now=now,
        )
        change = "repeated"
    originator = raising.originator
    by = originator.kind + (f":{originator.id}" if originator.id else "")
    return _Step(open, alarm, [change], by, raising.depth)


def _check_text(what: str, text: str, longest: int, *, lines: bool = False) -> None:
    """Refuse (400) an empty or long text, or one with control characters (a type or a name
    goes into a mail's subject: no line breaks; a note may have them, ``lines``)."""
    allowed = "\n\t" if lines else ""
    if (
        not text.strip()
        or len(text) > longest
        or any(ord(c) < 32 and c not in allowed for c in text)
        or "\x7f" in text
    ):
        kind = "no control characters but line breaks" if lines else "no control characters"
        raise RegistryError(f"{what} is 1 to {longest} characters ({kind})", "invalid")
