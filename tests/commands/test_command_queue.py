"""``DeviceCommands``' own time and memory, on an injected clock and a real registry (SQLite and
PostgreSQL) and ``LocalBus``: a queued command expires exactly at its ttl, and what a stopped
platform left half done is put right when the next one opens — the queue kept, a batch's unsent
commands and unanswered sends failed, saying so, and a late reply still matched."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hongshan.bus.local import LocalBus
from hongshan.messages import (
    CommandGivenUp,
    CommandResult,
    DeviceRef,
    Downlink,
    Outcome,
    ServiceReplied,
    StatusChanged,
    Uplink,
)
from hongshan.messages.commands import CommandKind, CommandRecord, CommandState
from hongshan.pipeline.uplink import Pipeline
from hongshan.services.commands import DeviceCommands
from hongshan.services.pacing import Pacer, Pacing
from hongshan.store.registry.store import SQLRegistry

S = CommandState
LAMP = DeviceRef("a1Lamps", "lamp-1")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def offline_commands(
    registry: SQLRegistry, clock: Clock
) -> tuple[DeviceCommands, LocalBus, list[Uplink]]:
    """Commands whose devices are all offline (nothing is sent: no dialect serves them), and
    what the bus hears of their ends."""
    bus = LocalBus(Pipeline([]), protocol_of=lambda _pk: "alink")
    heard: list[Uplink] = []
    bus.subscribe(heard.append, kinds=(CommandGivenUp,))
    commands = DeviceCommands(
        bus, lambda _pk: None, registry.commands, online=lambda _pk, _dn: False, clock=clock
    )
    return commands, bus, heard


async def test_a_queued_command_expires_at_its_ttl(registry: SQLRegistry) -> None:
    clock = Clock(1_000.0)
    commands, _, heard = offline_commands(registry, clock)
    await commands.open()
    try:
        record = await commands.submit(
            LAMP, CommandKind.SET, "set", {"LightSwitch": 1}, wait=None, ttl=60, origin="api"
        )
        assert record.state is S.QUEUED and commands.queued(LAMP) == 1
        assert record.expires_at == 1_060_000
        clock.now = 1_059.999
        assert commands.expire() == []
        clock.now = 1_060.0
        assert [r.id for r in commands.expire()] == [record.id]
        assert commands.queued(LAMP) == 0
        stored = await commands.get(record.id)
        assert (stored.state, stored.finished_at, stored.outcome) == (
            S.EXPIRED,
            1_060_000,
            "expired",
        )
        assert len(heard) == 1
        given_up = heard[0]
        assert isinstance(given_up, CommandGivenUp)
        assert (given_up.state, given_up.command_id, given_up.call_id) == ("expired", record.id, "")
    finally:
        await commands.close()


def left(state: CommandState, *, ttl: float | None, call_id: str = "") -> CommandRecord:
    return CommandRecord(
        id=0,
        product_key=LAMP.product,
        device_name=LAMP.device,
        kind=CommandKind.SET,
        service="set",
        params={"LightSwitch": 1},
        origin="rule:3",
        state=state,
        call_id=call_id,
        wait=5.0,
        ttl=ttl,
        created_at=1_000_000,
        sent_at=None if state is S.QUEUED else 1_000_500,
        expires_at=None if ttl is None else 1_000_000 + int(ttl * 1000),
    )


async def test_what_a_stop_left_is_put_right_at_the_next_start(registry: SQLRegistry) -> None:
    unsent = left(S.QUEUED, ttl=None)
    waiting = left(S.QUEUED, ttl=600)
    cut_short = left(S.SENT, ttl=None)
    unanswered = left(S.SENT, ttl=None, call_id="77")
    await registry.commands.add([unsent, waiting, cut_short, unanswered])
    clock = Clock(1_001.0)
    commands, _, heard = offline_commands(registry, clock)
    await commands.open()
    try:
        failed = await commands.get(unsent.id)
        assert failed.state is S.FAILED
        assert failed.message == "the platform stopped before it was sent"
        assert (await commands.get(cut_short.id)).state is S.FAILED
        assert (await commands.get(waiting.id)).state is S.QUEUED and commands.queued(LAMP) == 1
        assert {u.command_id for u in heard if isinstance(u, CommandGivenUp)} == {
            unsent.id,
            cut_short.id,
        }
        reply = ServiceReplied(
            device=LAMP, received=1_001_000, call_id="77", service="set", code=200
        )
        commands.on_uplink(reply)
        answered = await commands.get(unanswered.id)
        assert (answered.state, answered.code) == (S.REPLIED, 200)
        assert (await commands.cancel(waiting.id)).state is S.CANCELLED
    finally:
        await commands.close()


async def test_the_command_on_its_way_when_its_ttl_ends_is_not_expired(
    registry: SQLRegistry,
) -> None:
    """The bus's own way to reach a device (a served protocol) stands in for a dialect: it
    holds the first command until the test lets the device answer."""
    clock = Clock(1_000.0)
    online = {"now": False}
    bus = LocalBus(Pipeline([]), protocol_of=lambda _pk: "held")
    arrived, answer, answered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def device(command: Downlink) -> CommandResult:
        arrived.set()
        await answer.wait()
        answered.set()  # (its caller resumes in this same turn of the loop, before the test)
        return CommandResult(call_id="9", outcome=Outcome.REPLIED, code=200)

    bus.serve("held", device)
    commands = DeviceCommands(
        bus, lambda _pk: None, registry.commands, online=lambda _pk, _dn: online["now"], clock=clock
    )
    await commands.open()
    try:
        first, second = [
            await commands.submit(LAMP, CommandKind.SET, "set", {"Brightness": n}, 5, 60, "api")
            for n in (1, 2)
        ]
        assert (first.state, second.state) == (S.QUEUED, S.QUEUED)
        online["now"] = True
        commands.on_uplink(StatusChanged(device=LAMP, received=1_000_000, online=True))
        await asyncio.wait_for(arrived.wait(), 5)
        assert first.state is S.SENT
        clock.now = 1_061.0  # both past their ttl: only the one still waiting expires
        assert commands.expire() == [second]
        answer.set()
        await asyncio.wait_for(answered.wait(), 5)
        assert first.state is S.REPLIED and second.state is S.EXPIRED
        assert commands.queued(LAMP) == 0
        assert (await commands.get(first.id)).state is S.REPLIED
    finally:
        await commands.close()


async def test_queues_sent_to_devices_coming_back_together_keep_the_pace(
    registry: SQLRegistry,
) -> None:
    """Five lamps with a command each waiting come back at once (power is restored): no more
    than the pace's two are on their way at a time."""
    lamps = [DeviceRef("a1Lamps", f"lamp-{n}") for n in range(5)]
    online = {"now": False}
    bus = LocalBus(Pipeline([]), protocol_of=lambda _pk: "held")
    holding: list[asyncio.Event] = []
    changed = asyncio.Event()  # a command arrived, or was answered
    answered: list[str] = []

    async def device(command: Downlink) -> CommandResult:
        answer = asyncio.Event()
        holding.append(answer)
        changed.set()
        await answer.wait()
        answered.append(command.device.device)
        changed.set()  # (its caller resumes in this same turn of the loop, before the test)
        return CommandResult(call_id=str(len(answered)), outcome=Outcome.REPLIED, code=200)

    async def until(done: Callable[[], bool]) -> None:
        while not done():
            changed.clear()
            await asyncio.wait_for(changed.wait(), 5)

    bus.serve("held", device)
    pacer = Pacer(Pacing(max_in_flight=2, per_second=1_000_000))
    commands = DeviceCommands(
        bus,
        lambda _pk: None,
        registry.commands,
        online=lambda _pk, _dn: online["now"],
        clock=Clock(1_000.0),
        pacer=pacer,
    )
    await commands.open()
    try:
        records = [
            await commands.submit(lamp, CommandKind.SET, "set", {"LightSwitch": 1}, 5, 600, "api")
            for lamp in lamps
        ]
        online["now"] = True
        for lamp in lamps:
            commands.on_uplink(StatusChanged(device=lamp, received=1_000_000, online=True))
        await until(lambda: len(holding) == 2)
        assert pacer.in_flight == 2
        for n in range(len(lamps)):
            await until(lambda n=n: len(holding) > n)
            assert len(holding) - len(answered) <= 2 and pacer.in_flight <= 2
            holding[n].set()
            await until(lambda n=n: len(answered) > n)
        assert sorted(answered) == [lamp.device for lamp in lamps]
        assert pacer.most_in_flight == 2
        assert {(await commands.get(r.id)).state for r in records} == {S.REPLIED}
    finally:
        await commands.close()
