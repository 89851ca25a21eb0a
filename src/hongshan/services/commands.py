"""``DeviceCommands``: one way to command a device, whatever protocol it speaks, and the one
place a command's lifecycle is kept (``messages.commands``: queued → sent → replied, …).

Every property set, service call and raw call — from the API, the CLI, a rule, a scene — gets
a record in the registry's ``commands`` table before it is sent, and each step after is
written there: the dialect's answer, a reply that comes after its caller stopped waiting
(heard as ``ServiceReplied`` on the bus and matched by device and call id), the end of a
command that waited queued for an offline device. What ends without an answer is published on
the bus as ``CommandGivenUp`` (the device's history, the rules' ``$things/…/commands``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from hongshan.bus import Bus
from hongshan.errors import HongshanError, ShuttingDown
from hongshan.messages import (
    DEFAULT_WAIT,
    MAX_WAIT,
    CallService,
    CommandGivenUp,
    CommandResult,
    DeviceRef,
    Downlink,
    Outcome,
    Problem,
    RawCall,
    ServiceReplied,
    SetProperties,
    StatusChanged,
    Uplink,
)
from hongshan.messages.commands import (
    AWAITING_REPLY,
    CommandKind,
    CommandRecord,
    CommandState,
    may_move,
)
from hongshan.services.pacing import Pacer
from hongshan.store.registry.commands import CommandFilter, CommandTable
from hongshan.things.model import RegistryError
from hongshan.things.tsl import ThingModel

log = logging.getLogger("hongshan.commands")

S = CommandState
MAX_TTL = 7 * 24 * 3600.0  # the longest a command may wait queued for its device, s
MAX_AWAITING = 100_000  # sent or timed-out commands whose late reply is still matched
LATE_REPLIES = 86_400.0  # seconds after which a reply is no longer looked for after a restart
SWEEP_EVERY = 1.0  # seconds between looks for queued commands whose time to live ran out
PRUNE_EVERY = 3600  # sweeps between prunings of finished commands past their retention


class InvalidCall(HongshanError):
    """A call to a device that does not fit its thing model, or that its dialect refuses
    (an RRPC topic that is not the device's own, say); nothing was sent."""

    http_status = 400

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.message} ({p.kind})" for p in problems))
        self.problems = problems

    @property
    def extensions(self) -> dict[str, Any]:
        return {"problems": msgspec.to_builtins(self.problems)}


class DeviceCommands:
    """Set properties, call services, raw calls: checked against the device's thing model
    here, for every protocol alike, recorded, then carried by the bus to the dialect that
    serves the device's product, which sends them and brings back the answer. Owns each
    command's state (moved only as ``messages.commands.TRANSITIONS`` allows), the queue of
    commands with a time to live waiting for their offline devices (kept in the registry, so
    it outlives a restart; sent in order when the device comes), their expiry, and the
    matching of late replies. Never speaks a protocol itself; never waits longer than
    ``MAX_WAIT`` for one device."""

    def __init__(
        self,
        bus: Bus,
        thing_model: Callable[[str], ThingModel | None],
        records: CommandTable,
        *,
        online: Callable[[str, str], bool],
        clock: Callable[[], float] = time.time,
        pacer: Pacer | None = None,
        keep_days: float = 30.0,
        keep_rows: int = 1_000_000,
        reply_within: float = 300.0,
    ) -> None:
        """``pacer``: how fast queued commands go to devices that come back (all at once
        after an outage); ``keep_days``, ``keep_rows``: how long finished commands are kept,
        and at most how many (the newest); queued ones are kept until they end;
        ``reply_within``: seconds a command sent without waiting may go unanswered before it
        is timed out (a reply after that still completes it)."""
        self._pacer = pacer or Pacer()
        self._bus = bus
        self._thing_model = thing_model
        self._records = records
        self._online = online
        self._clock = clock
        self._queues: dict[DeviceRef, collections.deque[CommandRecord]] = {}
        self._delivering: dict[DeviceRef, asyncio.Task[None]] = {}
        # (device, call id) -> a sent command that may still be answered
        self._awaiting: collections.OrderedDict[tuple[DeviceRef, str], CommandRecord] = (
            collections.OrderedDict()
        )
        self._sweeper: asyncio.Task[None] | None = None
        # who hears each record once recorded and at each move of its state (the live API);
        # a fault of one stops nothing
        self.on_change: list[Callable[[CommandRecord], None]] = []
        self._keep = (keep_days, keep_rows)
        self._reply_within = int(reply_within * 1000)
        # commands moved into each state (sent, replied, timed_out, …): what the metrics read
        self.moves: collections.Counter[CommandState] = collections.Counter()

    # -- start and stop --------------------------------------------------------------------

    async def open(self) -> None:
        """Take up what the registry keeps: the queue (in order), the commands that may still
        be answered; deliver to the devices online now, and look for expiry every second.
        What the last run left half done fails now, said so: a command queued without a time
        to live (a batch's, not yet sent when it stopped), and one sent whose dialect never
        gave its answer (or call id)."""
        for record in await self._records.in_states([S.QUEUED]):
            if record.ttl is not None:
                self._queue_of(_device(record)).append(record)
            else:
                self._finish(record, S.FAILED, "failed", "the platform stopped before it was sent")
        since = self._now() - int(LATE_REPLIES * 1000)
        for record in await self._records.in_states(
            AWAITING_REPLY, since=since, newest=MAX_AWAITING
        ):
            if record.call_id:
                self._await_reply(record)
            elif record.state is S.SENT:
                why = "the platform stopped before the device answered"
                self._finish(record, S.FAILED, "failed", why)
        for device in list(self._queues):
            if self._online(device.product, device.device):
                self._deliver_soon(device)
        self._sweeper = asyncio.create_task(self._sweep_every(SWEEP_EVERY))

    async def close(self) -> None:
        tasks = [*self._delivering.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._delivering.clear()
        self._sweeper = None

    # -- what callers ask -------------------------------------------------------------------

    async def set(
        self,
        device: DeviceRef,
        values: dict[str, Any],
        *,
        wait: float | None = None,
        ttl: float | None = None,
        origin: str = "api",
    ) -> CommandResult:
        """Ask the device to take ``values``; ``wait`` seconds for its answer (None: sent,
        not waited for)."""
        _, result = await self.send(device, CommandKind.SET, "set", values, wait, ttl, origin)
        return result

    async def call(
        self,
        device: DeviceRef,
        service: str,
        params: dict[str, Any],
        *,
        wait: float | None = DEFAULT_WAIT,
        ttl: float | None = None,
        origin: str = "api",
    ) -> CommandResult:
        """Call one of the device's services, waiting ``wait`` seconds for its answer
        (None: sent, not waited for — a synchronous service still waits, as on Alibaba)."""
        kind = CommandKind.CALL
        _, result = await self.send(device, kind, service, params, wait, ttl, origin)
        return result

    async def raw(
        self,
        device: DeviceRef,
        payload: bytes,
        *,
        wait: float,
        topic: str | None = None,
        origin: str = "api",
    ) -> CommandResult:
        """Raw bytes to the device, its raw answer back within ``wait`` s (Alibaba's RRPC)."""
        params = {"payloadBase64": base64.b64encode(payload).decode()}
        kind = CommandKind.RAW
        _, result = await self.send(device, kind, topic or "", params, wait, None, origin)
        return result

    async def submit(
        self,
        device: DeviceRef,
        kind: CommandKind,
        service: str,
        params: Any,
        wait: float | None,
        ttl: float | None,
        origin: str,
    ) -> CommandRecord:
        """Check, record and send one command; answers its record once the dialect answered
        (or once it is queued for its offline device, when it has a ``ttl``)."""
        record, _ = await self.send(device, kind, service, params, wait, ttl, origin)
        return record

    async def send(
        self,
        device: DeviceRef,
        kind: CommandKind,
        service: str,
        params: Any,
        wait: float | None,
        ttl: float | None,
        origin: str,
    ) -> tuple[CommandRecord, CommandResult]:
        """As ``submit``, with the dialect's own answer too (a raw call's bytes, the problems
        of a reply's output), or, for a command queued for its device, ``result_of`` it."""
        record = self.new_record(device, kind, service, params, wait, ttl, origin)
        await self._records.add([record])
        self._announce(record)
        result = await self.dispatch(record)
        return record, result if result is not None else result_of(record)

    def new_record(
        self,
        device: DeviceRef,
        kind: CommandKind,
        service: str,
        params: Any,
        wait: float | None,
        ttl: float | None,
        origin: str,
        *,
        checked: bool = False,
    ) -> CommandRecord:
        """A command's record, queued and not yet kept, once its call fits the thing model
        (``InvalidCall``; ``checked``: the caller knows it does) and its wait and time to live
        their bounds (``RegistryError``)."""
        if wait is not None and not 0 <= wait <= MAX_WAIT:
            raise RegistryError(f"wait: {wait:g} s is not within 0 to {MAX_WAIT:g} s", "invalid")
        if ttl is not None and not 0 < ttl <= MAX_TTL:
            raise RegistryError(f"ttl: {ttl:g} s is not within 0 to {MAX_TTL:g} s", "invalid")
        if checked:
            pass
        elif kind is CommandKind.SET:
            self.check(device.product, "set", params)
        elif kind is CommandKind.CALL:
            self.check(device.product, service, params)
        now = self._now()
        return CommandRecord(
            id=0,
            product_key=device.product,
            device_name=device.device,
            kind=kind,
            service=service,
            params=params,
            origin=origin,
            state=S.QUEUED,
            wait=wait or None,
            ttl=ttl,
            created_at=now,
            expires_at=None if ttl is None else now + int(ttl * 1000),
        )

    def check(self, product: str, service: str, params: Any) -> None:
        """``InvalidCall`` when the call does not fit the product's thing model."""
        model = self._thing_model(product)
        if model is None:
            return
        problems = model.check_service_input(service, params)
        if problems:
            raise InvalidCall(problems)

    async def dispatch(self, record: CommandRecord) -> CommandResult | None:
        """Send a recorded command now: its dialect answers (``offline`` for a device that is
        not connected: failed) — unless it has a time to live and its device is offline or
        has others waiting before it: then it is queued. The dialect's answer, None when it
        was queued."""
        device = _device(record)
        queue = self._queues.get(device)
        if record.ttl is not None and queue:  # behind those already waiting, in order
            queue.append(record)
            self._deliver_soon(device)
            return None
        if record.ttl is not None and not self._online(device.product, device.device):
            self._queue_of(device).append(record)
            return None
        result = await self._send(record)
        if record.state is S.QUEUED:  # it went just now: it waits for it after all
            self._queue_of(device).append(record)
        return result

    async def get(self, command_id: int) -> CommandRecord:
        record = await self._records.get(command_id)
        if record is None:
            raise RegistryError(f"no command {command_id}", "not_found")
        return record

    async def list_commands(self, where: CommandFilter) -> list[CommandRecord]:
        return await self._records.list_commands(where)

    async def count_commands(self, where: CommandFilter) -> int:
        return await self._records.count_commands(where)

    async def cancel(self, command_id: int) -> CommandRecord:
        """Cancel a command waiting queued; ``RegistryError`` (conflict) for one that went."""
        for queue in self._queues.values():
            for record in queue:
                if record.id == command_id and record.state is S.QUEUED:
                    queue.remove(record)
                    self._finish(record, S.CANCELLED, "cancelled", "cancelled")
                    return record
        record = await self.get(command_id)
        raise RegistryError(
            f"command {command_id} is {record.state}: only a queued command can be cancelled",
            "conflict",
        )

    def queued(self, device: DeviceRef) -> int:
        """How many commands wait for ``device`` to come online."""
        return len(self._queues.get(device, ()))

    # -- what the bus says ------------------------------------------------------------------

    def on_uplink(self, uplink: Uplink) -> None:
        """A device came online (its queue is sent), or answered a call (a late reply
        completes the record of a command whose caller stopped waiting)."""
        if type(uplink) is StatusChanged:
            if uplink.online and self._queues.get(uplink.device):
                self._deliver_soon(uplink.device)
        elif type(uplink) is ServiceReplied:
            record = self._awaiting.pop((uplink.device, uplink.call_id), None)
            if record is not None and record.state in AWAITING_REPLY:
                record.code, record.output, record.message = (
                    uplink.code,
                    uplink.output,
                    uplink.message,
                )
                self._move(record, S.REPLIED, outcome=Outcome.REPLIED.value)

    def expire(self) -> list[CommandRecord]:
        """Every queued command whose time to live ran out: expired; every one sent without
        waiting and unanswered for ``reply_within``: timed out (what expired and timed out)."""
        now = self._now()
        expired = self._unanswered(now)
        for device, queue in list(self._queues.items()):
            for record in list(queue):
                # (the head may be on its way to the device now: it is not queued any more)
                if record.state is S.QUEUED and self._expired(record, now):
                    queue.remove(record)
                    self._finish(record, S.EXPIRED, "expired", "its time to live ran out")
                    expired.append(record)
            if not queue and device not in self._delivering:
                del self._queues[device]
        return expired

    def _unanswered(self, now: int) -> list[CommandRecord]:
        """The commands sent without waiting whose reply is overdue: timed out, still looked
        for (a late reply completes them). ``_awaiting`` is in the order they were sent."""
        timed_out = []
        overdue = now - self._reply_within
        for record in list(self._awaiting.values()):
            if record.state is not S.SENT:
                continue  # (timed out already: its late reply is all that is looked for)
            if record.sent_at is None or record.sent_at > overdue:
                break
            why = f"no reply in {self._reply_within / 1000:g} s"
            self._finish(record, S.TIMED_OUT, "timed_out", why)
            timed_out.append(record)
        return timed_out

    # -- the lifecycle ----------------------------------------------------------------------

    async def _send(self, record: CommandRecord) -> CommandResult:
        self._move(record, S.SENT, sent_at=self._now())
        try:
            result = await self._bus.request(_downlink(record))
        except ShuttingDown:  # (its dialect said so in the device's history already)
            if record.ttl is not None and not self._expired(record):  # sent after the restart
                self._move(record, S.QUEUED, sent_at=None)
            else:
                self._move(record, S.FAILED, outcome="given_up", message="shutting down")
            raise
        except asyncio.CancelledError:  # the platform stops: its queue keeps what may wait
            if record.ttl is not None:
                self._move(record, S.QUEUED, sent_at=None)
            raise
        except HongshanError as exc:
            self._finish(record, S.FAILED, "failed", str(exc))
            raise
        record.call_id = result.call_id
        record.code = result.code
        record.output = _stored_output(result.output)
        record.message = result.message
        match result.outcome:
            case Outcome.REPLIED:
                self._move(record, S.REPLIED, outcome=result.outcome.value)
            case Outcome.SENT:
                self._move(record, S.SENT, outcome=result.outcome.value)
                self._await_reply(record)
            case Outcome.TIMED_OUT:
                self._await_reply(record)
                self._finish(record, S.TIMED_OUT, result.outcome.value, result.message)
            case Outcome.OFFLINE:
                if record.ttl is not None and not self._expired(record):
                    self._move(record, S.QUEUED, sent_at=None, outcome="", code=None)
                else:  # (its dialect's answer, with the protocol's code: nothing was sent)
                    record.sent_at = None
                    self._finish(record, S.FAILED, result.outcome.value, result.message)
            case Outcome.REFUSED:
                self._finish(record, S.FAILED, result.outcome.value, result.message)
                raise InvalidCall(result.problems)
        return result

    def _deliver_soon(self, device: DeviceRef) -> None:
        if device not in self._delivering:
            task = asyncio.create_task(self._deliver(device))
            self._delivering[device] = task

    async def _deliver(self, device: DeviceRef) -> None:
        """Send a device's queue in order while it is online, one command at a time (each
        waits for its answer as long as its ``wait`` says)."""
        try:
            queue = self._queue_of(device)
            while queue and self._online(device.product, device.device):
                record = queue[0]
                if record.state is not S.QUEUED:
                    queue.popleft()
                    continue
                if self._expired(record):
                    queue.popleft()
                    self._finish(record, S.EXPIRED, "expired", "its time to live ran out")
                    continue
                await self._pacer.start()
                try:
                    if record.state is not S.QUEUED:  # (cancelled, expired meanwhile)
                        continue
                    await self._send(record)
                except ShuttingDown:
                    return
                except HongshanError as exc:
                    log.info("command %d to %s: %s", record.id, _named(device), exc)
                finally:
                    self._pacer.done()
                if record.state is S.QUEUED:  # the device went again: it waits at the head
                    return
                if queue and queue[0] is record:
                    queue.popleft()
        finally:
            del self._delivering[device]
            if not self._queues.get(device):
                self._queues.pop(device, None)

    async def prune(self) -> int:
        """Forget finished commands past their retention; how many went."""
        days, rows = self._keep
        return await self._records.prune(self._now() - int(days * 86_400_000), rows)

    async def _sweep_every(self, seconds: float) -> None:
        sweeps = 0
        while True:
            if sweeps % PRUNE_EVERY == 0:
                try:
                    await self.prune()
                except Exception:  # (the database's, say): expiry goes on; tried next hour
                    log.exception("commands: pruning finished commands failed")
            await asyncio.sleep(seconds)
            self.expire()
            sweeps += 1

    def _await_reply(self, record: CommandRecord) -> None:
        if not record.call_id:
            return
        self._awaiting[_device(record), record.call_id] = record
        while len(self._awaiting) > MAX_AWAITING:
            self._awaiting.popitem(last=False)

    def _finish(self, record: CommandRecord, state: CommandState, outcome: str, why: str) -> None:
        """An end without an answer: the record moves, and the bus hears it."""
        if not self._move(record, state, outcome=outcome, message=why or record.message):
            return
        self._bus.publish(
            CommandGivenUp(
                device=_device(record),
                received=self._now(),
                call_id=record.call_id,
                service=record.service,
                why=why,
                sets_properties=record.kind is CommandKind.SET,
                state=state.value,
                command_id=record.id,
            )
        )

    def _move(self, record: CommandRecord, state: CommandState, **changes: Any) -> bool:
        """Move ``record`` to ``state`` if the table allows it (else a fault of ours, logged:
        False), and have the registry write it."""
        if state is not record.state and not may_move(record.state, state):
            log.error("command %d: no move from %s to %s", record.id, record.state, state)
            return False
        for name, value in changes.items():
            setattr(record, name, value)
        if state is not record.state:
            self.moves[state] += 1
        record.state = state
        if state in (S.REPLIED, S.TIMED_OUT, S.FAILED, S.EXPIRED, S.CANCELLED):
            record.finished_at = self._now()
        self._records.changed(record)
        self._announce(record)
        return True

    def _announce(self, record: CommandRecord) -> None:
        for listener in self.on_change:
            try:
                listener(record)
            except Exception:
                log.exception("command %d: %r could not hear its change", record.id, listener)

    def _queue_of(self, device: DeviceRef) -> collections.deque[CommandRecord]:
        queue = self._queues.get(device)
        if queue is None:
            queue = self._queues[device] = collections.deque()
        return queue

    def _expired(self, record: CommandRecord, now: int | None = None) -> bool:
        now = self._now() if now is None else now
        return record.expires_at is not None and record.expires_at <= now

    def _now(self) -> int:
        return int(self._clock() * 1000)


def result_of(record: CommandRecord) -> CommandResult:
    """What a caller that sent one command is answered: the dialect's words for its outcome
    (``sent`` for one waiting queued for its device, which has no answer yet)."""
    known = {outcome.value for outcome in Outcome}
    outcome = Outcome(record.outcome) if record.outcome in known else Outcome.SENT
    return CommandResult(
        call_id=record.call_id,
        outcome=outcome,
        code=record.code if record.code is not None else 0,
        output=record.output,
        message=record.message,
    )


def _device(record: CommandRecord) -> DeviceRef:
    return DeviceRef(record.product_key, record.device_name)


def _named(device: DeviceRef) -> str:
    return f"{device.product}/{device.device}"


def _downlink(record: CommandRecord) -> Downlink:
    device = _device(record)
    match record.kind:
        case CommandKind.SET:
            return SetProperties(device=device, values=record.params, timeout=record.wait)
        case CommandKind.CALL:
            return CallService(
                device=device, service=record.service, params=record.params, timeout=record.wait
            )
        case CommandKind.RAW:
            payload = base64.b64decode(record.params["payloadBase64"])
            return RawCall(
                device=device,
                payload=payload,
                topic=record.service or None,
                timeout=record.wait or DEFAULT_WAIT,
            )
    raise TypeError(f"no such kind of command: {record.kind!r}")


def _stored_output(output: Any) -> Any:
    """A raw call's answer (bytes) as JSON can keep it."""
    if isinstance(output, bytes):
        return {"payloadBase64": base64.b64encode(output).decode()}
    return output
