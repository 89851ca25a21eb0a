"""``AlarmService``: alarms raised, changed and listed, their escalation timers, and each
change told to the rules and the notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal, Protocol

import msgspec

from hongshan.alarms.escalation import due, next_wake
from hongshan.alarms.model import (
    Alarm,
    AlarmFilter,
    Change,
    Escalation,
    Note,
    Originator,
    Severity,
    escalation_problem,
    raise_again,
    raised,
    transition,
)
from hongshan.alarms.routes import Owed
from hongshan.messages import DeviceRef, EventRaised, Uplink
from hongshan.services.alarms.notify import AlarmNotifier
from hongshan.things.model import RegistryError
from hongshan.things.tsl import ThingModel

log = logging.getLogger("hongshan.alarms")

MAX_TYPE = 128
MAX_NAME = 128  # who acknowledged, cleared, is assigned, wrote a note
MAX_NOTE = 4000
RETRY_AFTER = 1000  # ms before a timer whose alarm could not be read or kept tries again

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

    async def open_of(self, product_key: str, device_name: str, type: str) -> Alarm | None: ...

    async def keep(
        self, alarm: Alarm, owed: Sequence[Owed] = (), *, note: Note | None = None
    ) -> tuple[int, list[list[int | None]]]: ...

    async def get(self, alarm_id: int) -> Alarm: ...

    async def list_alarms(self, where: AlarmFilter) -> tuple[list[Alarm], int]: ...

    async def list_open(self) -> list[Alarm]: ...


class Things(Protocol):
    """What the alarms ask of the registry (``things.directory.Directory``)."""

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    def thing_model_of(self, product_key: str) -> ThingModel | None: ...


def _ms() -> int:
    return int(time.time() * 1000)


class AlarmService:
    """Raises, repeats, acknowledges, clears, assigns and annotates alarms — deciding each by
    ``hongshan.alarms`` (one open alarm per device and type; ThingsBoard's four statuses) and
    keeping it in the registry with the notifications it owes, in one transaction, one
    change at a time — and runs their escalation policies
    with timers computed from the kept times (so a restart goes on where it was, not from
    zero). Every change is told to the rules (``$things/{pk}/{dn}/alarms``) and to the
    notifier. Hears the bus's uplinks for a device's TSL ``alert`` and ``error`` events.
    Never sends a notification itself (``AlarmNotifier``) and never runs a rule.

    ``raise_alarm`` and ``clear_alarm`` are the calls anything that raises alarms makes: the
    rules' alarm action, the events, the API, and the scenes' and products' alarm conditions
    to come."""

    def __init__(
        self,
        store: AlarmStore,
        notifier: AlarmNotifier,
        *,
        things: Things,
        hear: Hear,
        clock: Callable[[], int] = _ms,
    ) -> None:
        self._store = store
        self.notifier = notifier
        self._things = things
        self._hear = hear
        self._clock = clock
        self._lock = asyncio.Lock()  # one change at a time: read, decide, keep
        self._wakes: dict[int, int] = {}  # alarm id -> when (ms) its policy next wants something
        self._woken = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def load(self) -> None:
        """The routes, and when each open alarm's policy next wants something, from its kept
        times (alarms may be raised from now on)."""
        await self.notifier.load()
        for alarm in await self._store.list_open():
            self._track(alarm)

    def start(self) -> None:
        """Run the timers (what fell due while the platform was down is done at once): once
        the rules that hear their changes run."""
        self._timer = asyncio.create_task(self._run_timers(), name="alarm timers")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._tasks:  # (alarms of events heard: raised, not given up)
            await asyncio.gather(*self._tasks, return_exceptions=True)
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
        async with self._lock:
            now = self._clock()
            before = await self._store.open_of(device.product, device.device, type)
            if before is None:
                alarm = raised(
                    product_key=device.product,
                    device_name=device.device,
                    type=type,
                    severity=severity,
                    originator=originator,
                    details=details,
                    escalation=escalation,
                    now=now,
                )
                change: Change = "raised"
            else:
                alarm = raise_again(
                    before, severity=severity, details=details, escalation=escalation, now=now
                )
                change = "repeated"
            by = originator.kind + (f":{originator.id}" if originator.id else "")
            return await self._keep(alarm, [change], before, depth, by)

    async def clear_alarm(
        self, device: DeviceRef, type: str, *, by: str, depth: int = 0
    ) -> Alarm | None:
        """Clear the open alarm of ``type`` on ``device``; None when none is open."""
        async with self._lock:
            before = await self._store.open_of(device.product, device.device, type)
            if before is None:
                return None
            return await self._move(before, "clear", by, depth)

    # -- an operator's changes ---------------------------------------------------------------

    async def acknowledge(self, alarm_id: int, *, by: str) -> Alarm:
        """``AlarmStateError`` (409) naming its status when it is acknowledged already."""
        _check_text("who acknowledges", by, MAX_NAME)
        async with self._lock:
            return await self._move(await self._store.get(alarm_id), "acknowledge", by, 0)

    async def clear(self, alarm_id: int, *, by: str) -> Alarm:
        """``AlarmStateError`` (409) naming its status when it is cleared already."""
        _check_text("who clears", by, MAX_NAME)
        async with self._lock:
            return await self._move(await self._store.get(alarm_id), "clear", by, 0)

    async def assign(self, alarm_id: int, assignee: str | None, *, by: str) -> Alarm:
        """Give the alarm to ``assignee`` (None: to nobody)."""
        if assignee is not None:
            _check_text("an assignee", assignee, MAX_NAME)
        async with self._lock:
            before = await self._store.get(alarm_id)
            now = self._clock()
            alarm = msgspec.structs.replace(before, assignee=assignee, updated_at=now)
            return await self._keep(alarm, ["assigned"], before, 0, by)

    async def add_note(self, alarm_id: int, text: str, *, by: str) -> Alarm:
        _check_text("a note", text, MAX_NOTE, lines=True)
        _check_text("a note's author", by, MAX_NAME)
        async with self._lock:
            before = await self._store.get(alarm_id)
            note = Note(at=self._clock(), by=by, text=text)
            alarm = msgspec.structs.replace(before, notes=[*before.notes, note], updated_at=note.at)
            return await self._keep(alarm, ["noted"], before, 0, by, note)

    async def get(self, alarm_id: int) -> Alarm:
        return await self._store.get(alarm_id)

    async def list_alarms(self, where: AlarmFilter) -> tuple[list[Alarm], int]:
        return await self._store.list_alarms(where)

    async def _move(
        self, before: Alarm, operation: Literal["acknowledge", "clear"], by: str, depth: int
    ) -> Alarm:
        alarm = transition(before, operation, by=by, now=self._clock())
        change: Change = "acknowledged" if operation == "acknowledge" else "cleared"
        return await self._keep(alarm, [change], before, depth, by)

    # -- keeping and telling -------------------------------------------------------------------

    async def _keep(
        self,
        alarm: Alarm,
        changes: list[Change],
        before: Alarm | None,
        depth: int,
        by: str,
        note: Note | None = None,
    ) -> Alarm:
        """Keep the alarm with the notifications its ``changes`` owe, in one transaction (a
        change is never kept without them, nor owed without being kept); then track its
        timer, and tell the rules and the notifier (neither may stop it)."""
        now = self._clock()
        told = []
        for change in changes:
            payload = stream_payload(alarm, change, before, now, by)
            told.append((change, payload, self.notifier.wanting(alarm, change)))
        owed = [Owed([r.id for r in routes], c, payload) for c, payload, routes in told if routes]
        alarm_id, deliveries = await self._store.keep(alarm, owed, note=note)
        if not alarm.id:  # (inserted: its id only now)
            alarm = msgspec.structs.replace(alarm, id=alarm_id)
        self._track(alarm)
        device = DeviceRef(alarm.product_key, alarm.device_name)
        topic = STREAM.format(pk=alarm.product_key, dn=alarm.device_name)
        kept = iter(deliveries)
        for change, payload, routes in told:
            payload["id"] = alarm_id
            try:
                self._hear(topic, payload, device, depth)
            except Exception:  # (a fault of the engine's: the alarm is kept all the same)
                log.exception("alarm %s: the rules could not hear its change", alarm.id)
            if routes:
                self.notifier.send(routes, alarm, change, payload, next(kept))
        return alarm

    # -- the timers ----------------------------------------------------------------------------

    def _track(self, alarm: Alarm) -> None:
        wake = next_wake(alarm)
        if wake is None:
            self._wakes.pop(alarm.id, None)
        else:
            self._wakes[alarm.id] = wake
        self._woken.set()

    async def _run_timers(self) -> None:
        while True:
            self._woken.clear()
            now = self._clock()
            for alarm_id in [i for i, at in self._wakes.items() if at <= now]:
                await self._due(alarm_id)
            if self._wakes:
                wait = max(0.0, (min(self._wakes.values()) - self._clock()) / 1000)
            else:
                wait = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._woken.wait()

    async def _due(self, alarm_id: int) -> None:
        try:
            async with self._lock:
                before = await self._store.get(alarm_id)
                alarm, changes = due(before, self._clock())
                if changes:
                    await self._keep(alarm, changes, before, 0, "escalation")
                else:
                    self._track(alarm)
        except RegistryError:  # (gone)
            self._wakes.pop(alarm_id, None)
        except Exception:  # the store failing: tried again, never lost
            log.exception("alarm %s: its escalation could not be done now", alarm_id)
            self._wakes[alarm_id] = self._clock() + RETRY_AFTER

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
