"""``AlarmService`` in-process on a real registry (SQLite and PostgreSQL) and a real webhook
receiver: the open alarms kept in memory and in step with the registry, each alarm's changes
in order while different alarms' do not wait for each other, repeats folded into one write
and still told one by one, a restart that reloads the open alarms, and a change kept with
the notifications it owes or not at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alarm_helpers import refuse_deliveries

from hongshan.alarms.model import Alarm, AlarmFilter, Note, Originator
from hongshan.alarms.routes import Owed, RouteSpec
from hongshan.messages import DeviceRef
from hongshan.services.alarms.notify import AlarmNotifier
from hongshan.services.alarms.service import AlarmService
from hongshan.store.registry.alarms import AlarmTable
from hongshan.store.registry.database import Database
from hongshan.store.registry.store import SQLRegistry
from registry_databases import RegistryDatabase
from server_thread import test_settings as settings_in
from webhook_receiver import WebhookReceiver

RULE = Originator(kind="rule", id="7")


class WatchedTable(AlarmTable):
    """The registry's real ``alarms`` table (on a connection of its own), which says what was
    asked of it and holds the writes of the types in ``holds`` until their event is set."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.asked: list[str] = []  # "keep <type> <repeats>", "get", "open_of", …
        self.holds: dict[str, asyncio.Event] = {}
        self.writing = asyncio.Event()  # a held write is under way

    async def keep(
        self, alarm: Alarm, owed: Sequence[Owed] = (), *, note: Note | None = None
    ) -> tuple[int, list[list[int | None]]]:
        self.asked.append(f"keep {alarm.type} {alarm.repeats}")
        hold = self.holds.get(alarm.type)
        if hold is not None:
            self.writing.set()
            await hold.wait()
        return await super().keep(alarm, owed, note=note)

    async def get(self, alarm_id: int) -> Alarm:
        self.asked.append("get")
        return await super().get(alarm_id)

    async def open_of(self, product_key: str, device_name: str, type: str) -> Alarm | None:
        self.asked.append("open_of")
        return await super().open_of(product_key, device_name, type)

    async def list_open(self) -> list[Alarm]:
        self.asked.append("list_open")
        return await super().list_open()


@dataclass
class Desk:
    """A service on the test's registry: what its rules heard, its table, its lamp."""

    service: AlarmService
    table: WatchedTable
    heard: list[dict[str, Any]]
    lamp: DeviceRef

    def changes(self) -> list[tuple[str, int, int]]:
        return [(h["change"], h["id"], h["repeats"]) for h in self.heard]


@pytest.fixture
async def registry(registry_db: RegistryDatabase) -> AsyncIterator[SQLRegistry]:
    opened = await registry_db.open()
    product = await opened.create_product("lamps")
    await opened.create_device(product.product_key, "lamp-0001")
    yield opened
    await opened.close()


@pytest.fixture
async def open_desk(
    registry: SQLRegistry, registry_db: RegistryDatabase, tmp_path: Path
) -> AsyncIterator[Callable[[], Any]]:
    """Opens services on the registry (as many as a test restarts), stopped at its end."""
    opened: list[tuple[AlarmService, Database]] = []
    http = httpx.AsyncClient()

    async def open_one() -> Desk:
        db = await Database.open(registry_db.url, schema=registry_db.schema)
        table = WatchedTable(db)
        heard: list[dict[str, Any]] = []
        notifier = AlarmNotifier(
            registry.alarm_routes,
            http,
            settings_in(tmp_path),
            tenant_of=registry.directory.tenant_of,
        )
        service = AlarmService(
            table,
            notifier,
            things=registry.directory,
            hear=lambda topic, payload, device, depth: heard.append(payload),
        )
        await service.load()
        opened.append((service, db))
        (product,) = [p.product_key for p in await registry.list_products()]
        return Desk(service, table, heard, DeviceRef(product, "lamp-0001"))

    yield open_one
    for service, db in opened:
        await service.stop()
        await db.close()
    await http.aclose()


async def raise_(desk: Desk, type: str, severity: str = "major", **details: Any) -> Alarm:
    return await desk.service.raise_alarm(desk.lamp, type, severity, details, RULE)  # type: ignore[arg-type]


async def route_to(registry: SQLRegistry, desk: Desk, receiver: WebhookReceiver) -> None:
    """A webhook route that wants every change, known to the desk's notifier."""
    every = ["raised", "repeated", "acknowledged", "cleared", "assigned", "noted"]
    await desk.service.notifier.create(
        RouteSpec(name="ops", kind="webhook", url=receiver.url, changes=every, retries=0)  # type: ignore[arg-type]
    )


async def posted(receiver: WebhookReceiver, count: int) -> list[tuple[str, int, int]]:
    """The next ``count`` notifications: (change, alarm id, repeats), as they came (waited
    for off the loop, which sends them)."""
    bodies = [json.loads((await asyncio.to_thread(receiver.get))[1]) for _ in range(count)]
    return [(b["change"], b["id"], b["repeats"]) for b in bodies]


async def test_raises_from_many_tasks_make_one_alarm_each_counted_and_told(
    open_desk: Callable[[], Any],
    registry: SQLRegistry,
    receivers: Callable[..., WebhookReceiver],
) -> None:
    desk: Desk = await open_desk()
    hook = receivers()
    await route_to(registry, desk, hook)
    answers = await asyncio.gather(*(raise_(desk, "Overvoltage", seq=i) for i in range(50)))
    (alarm_id,) = {a.id for a in answers}
    assert sorted(a.repeats for a in answers) == list(range(50))
    kept = await registry.alarms.get(alarm_id)
    assert kept.repeats == 49 and kept == await desk.service.get(alarm_id)
    assert desk.changes() == [("raised", alarm_id, 0)] + [
        ("repeated", alarm_id, n) for n in range(1, 50)
    ]
    # each raise is a change of its own: its own details, its own notification
    assert [h["details"]["seq"] for h in desk.heard] == [a.details["seq"] for a in answers]
    assert sorted(await posted(hook, 50), key=lambda p: p[2]) == desk.changes()
    _, total = await registry.alarms.list_alarms(AlarmFilter(status="ACTIVE"))
    assert total == 1


async def test_repeats_during_a_write_are_folded_into_the_next_one(
    open_desk: Callable[[], Any],
    registry: SQLRegistry,
    receivers: Callable[..., WebhookReceiver],
) -> None:
    desk: Desk = await open_desk()
    hook = receivers()
    await route_to(registry, desk, hook)
    first = await raise_(desk, "Overvoltage", volts=251)
    desk.table.holds["Overvoltage"] = release = asyncio.Event()
    desk.table.asked.clear()
    under_way = asyncio.create_task(raise_(desk, "Overvoltage", volts=252))
    await desk.table.writing.wait()
    behind = [asyncio.create_task(raise_(desk, "Overvoltage", volts=253 + i)) for i in range(20)]
    await asyncio.sleep(0)  # (they ask their turn)
    release.set()
    answers = [await under_way] + [await task for task in behind]
    assert [a.repeats for a in answers] == list(range(1, 22))
    assert [a.details["volts"] for a in answers] == list(range(252, 273))
    # the repeat under way, then the twenty behind it in one write; nothing read
    assert desk.table.asked == ["keep Overvoltage 1", "keep Overvoltage 21"]
    assert desk.changes()[1:] == [("repeated", first.id, n) for n in range(1, 22)]
    assert sorted(await posted(hook, 22), key=lambda p: p[2]) == desk.changes()
    assert (await registry.alarms.get(first.id)).details == {"volts": 272}


async def test_different_alarms_do_not_wait_for_each_others_writes(
    open_desk: Callable[[], Any], registry: SQLRegistry
) -> None:
    desk: Desk = await open_desk()
    door = await raise_(desk, "Door open", "minor")
    desk.table.holds["Overvoltage"] = release = asyncio.Event()
    held = asyncio.create_task(raise_(desk, "Overvoltage"))
    await desk.table.writing.wait()
    # while Overvoltage's write is held, other alarms are raised, repeated and changed
    async with asyncio.timeout(10):
        tilt = await raise_(desk, "Pole leaning", "warning")
        again = await raise_(desk, "Door open", "major")
        acked = await desk.service.acknowledge(door.id, by="ana")
        cleared = await desk.service.clear(tilt.id, by="bo")
    assert not held.done()
    assert (again.id, again.repeats, acked.status) == (door.id, 1, "ACTIVE_ACK")
    assert cleared.status == "CLEARED_UNACK"
    release.set()
    overvoltage = await held
    assert [h["change"] for h in desk.heard] == [
        "raised", "raised", "repeated", "acknowledged", "cleared", "raised"
    ]  # fmt: skip
    found, _ = await registry.alarms.list_alarms(AlarmFilter(status="ACTIVE"))
    assert {a.id for a in found} == {door.id, overvoltage.id}


async def test_an_alarm_cleared_by_id_while_a_repeat_is_under_way_ends_right(
    open_desk: Callable[[], Any], registry: SQLRegistry
) -> None:
    desk: Desk = await open_desk()
    first = await raise_(desk, "Overvoltage")
    desk.table.holds["Overvoltage"] = release = asyncio.Event()
    repeat = asyncio.create_task(raise_(desk, "Overvoltage"))
    await desk.table.writing.wait()
    clear = asyncio.create_task(desk.service.clear(first.id, by="ana"))
    acknowledge = asyncio.create_task(desk.service.acknowledge(first.id, by="bo"))
    after = [asyncio.create_task(raise_(desk, "Overvoltage", "critical")) for _ in range(2)]
    await asyncio.sleep(0)  # (they ask their turn)
    release.set()
    assert (await repeat).repeats == 1
    cleared, acked = await clear, await acknowledge
    # the clearing and the acknowledgement came after the repeat, in order
    assert (cleared.status, cleared.repeats, acked.status) == ("CLEARED_UNACK", 1, "CLEARED_ACK")
    new, repeated = [await task for task in after]
    assert new.id == repeated.id != first.id and (new.repeats, repeated.repeats) == (0, 1)
    assert desk.changes() == [
        ("raised", first.id, 0),
        ("repeated", first.id, 1),
        ("cleared", first.id, 1),
        ("acknowledged", first.id, 1),
        ("raised", new.id, 0),
        ("repeated", new.id, 1),
    ]
    for alarm in (acked, repeated):  # the memory's copy, the registry's, the answer: one
        assert await desk.service.get(alarm.id) == await registry.alarms.get(alarm.id) == alarm


async def test_a_caller_gone_mid_write_has_its_change_kept_and_told_one_gone_before_none(
    open_desk: Callable[[], Any], registry: SQLRegistry
) -> None:
    desk: Desk = await open_desk()
    first = await raise_(desk, "Overvoltage")
    desk.table.holds["Overvoltage"] = release = asyncio.Event()
    mid_write = asyncio.create_task(raise_(desk, "Overvoltage"))
    await desk.table.writing.wait()
    before_its_turn = asyncio.create_task(raise_(desk, "Overvoltage"))
    await asyncio.sleep(0)  # (it asks its turn)
    mid_write.cancel()
    before_its_turn.cancel()
    release.set()
    for gone in (mid_write, before_its_turn):
        with pytest.raises(asyncio.CancelledError):
            await gone
    last = await raise_(desk, "Overvoltage")
    assert last.repeats == 2  # the one cancelled mid-write counted, the other not
    assert desk.changes() == [("raised", first.id, 0)] + [("repeated", first.id, n) for n in (1, 2)]
    assert await desk.service.get(first.id) == await registry.alarms.get(first.id) == last


async def test_every_change_by_id_keeps_the_memory_in_step_with_the_registry(
    open_desk: Callable[[], Any], registry: SQLRegistry
) -> None:
    desk: Desk = await open_desk()
    alarm = await raise_(desk, "Overvoltage", volts=260)
    service = desk.service
    for change in (
        lambda: service.assign(alarm.id, "ana", by="lead"),
        lambda: service.add_note(alarm.id, "crew sent", by="ana"),
        lambda: raise_(desk, "Overvoltage", "critical", volts=280),
        lambda: service.acknowledge(alarm.id, by="ana"),
        lambda: service.add_note(alarm.id, "fixed", by="ana"),
        lambda: raise_(desk, "Overvoltage", "minor", volts=255),
        lambda: service.assign(alarm.id, None, by="lead"),
        lambda: service.clear(alarm.id, by="ana"),
        lambda: service.add_note(alarm.id, "after the fact", by="lead"),
    ):
        answer = await change()
        assert await service.get(alarm.id) == await registry.alarms.get(alarm.id) == answer
    done = await service.get(alarm.id)
    assert done.status == "CLEARED_ACK" and done.repeats == 2 and done.severity == "critical"
    assert [n.text for n in done.notes] == ["crew sent", "fixed", "after the fact"]
    again = await raise_(desk, "Overvoltage")
    assert again.id != alarm.id and again.repeats == 0


async def test_a_restart_reloads_the_open_alarms_and_a_repeat_reads_nothing(
    open_desk: Callable[[], Any], registry: SQLRegistry
) -> None:
    before: Desk = await open_desk()
    open_one = await raise_(before, "Overvoltage")
    await raise_(before, "Overvoltage")
    gone = await raise_(before, "Door open")
    await before.service.clear(gone.id, by="ana")
    await before.service.stop()
    after: Desk = await open_desk()
    assert after.table.asked == ["list_open"]
    after.table.asked.clear()
    repeated = await raise_(after, "Overvoltage")
    assert (repeated.id, repeated.repeats) == (open_one.id, 2)
    assert await after.service.get(open_one.id) == repeated
    assert after.table.asked == ["keep Overvoltage 2"]  # one write, nothing read
    new = await raise_(after, "Door open")
    assert new.id != gone.id and new.repeats == 0


async def test_a_change_is_kept_with_the_notifications_it_owes_or_not_at_all(
    open_desk: Callable[[], Any],
    registry: SQLRegistry,
    registry_db: RegistryDatabase,
    receivers: Callable[..., WebhookReceiver],
) -> None:
    desk: Desk = await open_desk()
    hook = receivers()
    await route_to(registry, desk, hook)
    refuse_deliveries(registry_db, True)
    with pytest.raises(sa.exc.SQLAlchemyError, match="deliveries refused"):
        await raise_(desk, "Overvoltage")
    assert await registry.alarms.list_alarms(AlarmFilter()) == ([], 0)
    refuse_deliveries(registry_db, False)
    alarm = await raise_(desk, "Overvoltage")
    assert alarm.repeats == 0 and await posted(hook, 1) == [("raised", alarm.id, 0)]
    refuse_deliveries(registry_db, True)
    with pytest.raises(sa.exc.SQLAlchemyError, match="deliveries refused"):
        await raise_(desk, "Overvoltage")
    with pytest.raises(sa.exc.SQLAlchemyError, match="deliveries refused"):
        await desk.service.acknowledge(alarm.id, by="ana")
    # neither the repeat nor the acknowledgement was kept, remembered or told
    assert await registry.alarms.get(alarm.id) == alarm == await desk.service.get(alarm.id)
    assert desk.changes() == [("raised", alarm.id, 0)]
    refuse_deliveries(registry_db, False)
    again = await raise_(desk, "Overvoltage")
    assert again.repeats == 1 and await posted(hook, 1) == [("repeated", alarm.id, 1)]
    assert hook.count == 2
