"""Alarms and their notification routes in the registry, on SQLite and PostgreSQL: kept as the
service hands them over, one open alarm per device and type, listed by filters and pages,
there again when the registry is opened again."""

from __future__ import annotations

import msgspec
import pytest
import sqlalchemy as sa
from alarm_helpers import refuse_deliveries

from hongshan.alarms.model import (
    Alarm,
    AlarmFilter,
    Escalation,
    Note,
    Originator,
    raised,
    transition,
)
from hongshan.alarms.routes import Owed, RouteSpec
from hongshan.store.registry import schema
from hongshan.store.registry.alarms import AlarmTable
from hongshan.store.registry.engine import create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError
from registry_databases import RegistryDatabase

T0 = 1_800_000_000_000


def new(device: str, type: str, severity: str = "major", at: int = T0):  # type: ignore[no-untyped-def]
    return raised(
        product_key="clinic-1",
        device_name=device,
        type=type,
        severity=severity,  # type: ignore[arg-type]
        originator=Originator(kind="rule", id="7"),
        details={"spo2": 88, "nested": {"a": [1, 2]}},
        escalation=Escalation(after=60, to="critical", remind_every=30),
        now=at,
    )


async def kept(table: AlarmTable, alarm: Alarm, note: Note | None = None) -> Alarm:
    """``alarm`` kept (with ``note``), as the registry answers it."""
    alarm_id, _ = await table.keep(alarm, note=note)
    return await table.get(alarm_id)


async def test_alarms_are_kept_listed_and_opened_again(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    table = registry.alarms
    first = await kept(table, new("oximeter-7", "SpO2 low"))
    assert first.id > 0 and first.status == "ACTIVE_UNACK"
    assert msgspec.structs.replace(first, id=0) == new("oximeter-7", "SpO2 low")
    assert await table.open_of("clinic-1", "oximeter-7", "SpO2 low") == first
    assert await table.open_of("clinic-1", "oximeter-7", "Pulse high") is None
    with pytest.raises(RegistryError) as twice:
        await table.keep(new("oximeter-7", "SpO2 low"))
    assert twice.value.http_status == 409 and "open 'SpO2 low' alarm" in str(twice.value)
    acked = await kept(table, transition(first, "acknowledge", by="ana", now=T0 + 5))
    assert acked.status == "ACTIVE_ACK" and acked.acknowledged_by == "ana"
    note = Note(at=T0 + 6, by="ana", text="on my way")
    noted = await kept(table, msgspec.structs.replace(acked, updated_at=T0 + 6), note)
    assert noted.notes == [note] and noted.updated_at == T0 + 6
    cleared = await kept(table, transition(noted, "clear", by="bo", now=T0 + 7))
    assert cleared.status == "CLEARED_ACK" and cleared.notes == noted.notes
    # cleared: a new one of that device and type may open
    second = await kept(table, new("oximeter-7", "SpO2 low", "minor", T0 + 8))
    other = await kept(table, new("oximeter-9", "Pulse high", "critical", T0 + 9))
    assert (await table.open_of("clinic-1", "oximeter-7", "SpO2 low")) == second

    async def ids(**where: object) -> tuple[list[int], int]:
        found, total = await table.list_alarms(AlarmFilter(**where))  # type: ignore[arg-type]
        return [alarm.id for alarm in found], total

    assert await ids() == ([other.id, second.id, first.id], 3)
    assert await ids(status="ACTIVE") == ([other.id, second.id], 2)
    assert await ids(status="CLEARED_ACK") == ([first.id], 1)
    assert await ids(status="ACK") == ([first.id], 1)
    assert await ids(status="UNACK") == ([other.id, second.id], 2)
    assert await ids(severity="critical") == ([other.id], 1)
    assert await ids(min_severity="major") == ([other.id, first.id], 2)
    assert await ids(device_name="oximeter-7", type="SpO2 low") == ([second.id, first.id], 2)
    assert await ids(product_key="elsewhere") == ([], 0)
    assert await ids(limit=1, offset=1) == ([second.id], 3)
    await table.keep(msgspec.structs.replace(other, assignee="bo"))
    assert await ids(assignee="bo") == ([other.id], 1)
    assert [a.id for a in await table.list_open()] == [other.id, second.id]
    for missing in (0, 2**40, 999):
        with pytest.raises(RegistryError) as gone:
            await table.get(missing)
        assert gone.value.http_status == 404
    with pytest.raises(RegistryError) as nowhere:
        await table.keep(msgspec.structs.replace(other, id=999), note=Note(at=T0, by="x", text="y"))
    assert nowhere.value.http_status == 404
    await registry.close()
    reopened = await registry_db.open()
    try:
        again = await reopened.alarms.get(first.id)
        assert again == cleared
    finally:
        await reopened.close()


async def test_routes_are_kept_with_their_secret_sealed_and_their_failures(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    routes = registry.alarm_routes
    hook = await routes.create(
        RouteSpec(name="ops", kind="webhook", url="http://127.0.0.1:9/hook", types=["SpO2 low"]),
        "s3cret-of-the-route",
    )
    mail = await routes.create(
        RouteSpec(
            name="nurses",
            kind="email",
            to=["ward@clinic.example", "lead@clinic.example"],
            min_severity="major",
            changes=["raised", "escalated"],
        ),
        "x" * 32,
    )
    assert hook.secret == "s3cret-of-the-route" and hook.url == "http://127.0.0.1:9/hook"
    assert mail.to == ["ward@clinic.example", "lead@clinic.example"] and mail.url is None
    assert mail.changes == ["raised", "escalated"] and mail.min_severity == "major"
    with pytest.raises(RegistryError) as taken:
        await routes.create(RouteSpec(name="ops", kind="webhook", url="http://x"), "y")
    assert taken.value.http_status == 409
    await routes.sent(hook.id, None, T0)
    await routes.sent(hook.id, "HTTP 503 after 4 tries", T0 + 1)
    counted = await routes.get(hook.id)
    assert (counted.sent, counted.failed) == (1, 1)
    assert (counted.last_error, counted.last_error_at) == ("HTTP 503 after 4 tries", T0 + 1)
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        with engine.connect() as db:
            sealed = db.execute(sa.select(schema.alarm_routes.c.secret)).scalars().all()
    finally:
        engine.dispose()
    assert all("s3cret" not in value for value in sealed)
    changed = await routes.update(
        hook.id, RouteSpec(name="ops2", kind="email", to=["a@b.example"], retries=0)
    )
    assert (changed.name, changed.kind, changed.to, changed.url) == (
        "ops2", "email", ["a@b.example"], None
    )  # fmt: skip
    assert changed.secret == hook.secret and (changed.sent, changed.failed) == (1, 1)
    with pytest.raises(RegistryError) as renamed:
        await routes.update(hook.id, RouteSpec(name="nurses", kind="webhook", url="http://x"))
    assert renamed.value.http_status == 409
    with pytest.raises(RegistryError) as nowhere:
        await routes.update(999, RouteSpec(name="z", kind="webhook", url="http://x"))
    assert nowhere.value.http_status == 404
    await routes.delete(mail.id)
    assert [route.name for route in await routes.list_routes()] == ["ops2"]
    with pytest.raises(RegistryError) as gone:
        await routes.delete(mail.id)
    assert gone.value.http_status == 404


async def test_a_change_is_kept_with_what_it_owes_each_route(registry: SQLRegistry) -> None:
    routes = registry.alarm_routes
    ops = await routes.create(RouteSpec(name="ops", kind="webhook", url="http://x/a"), "s")
    gone = await routes.create(RouteSpec(name="gone", kind="webhook", url="http://x/b"), "s")
    await routes.delete(gone.id)  # (deleted after the service chose it)
    alarm = new("oximeter-7", "SpO2 low")
    repeated = msgspec.structs.replace(alarm, repeats=1)
    alarm_id, owed = await registry.alarms.keep(
        repeated,
        [
            Owed([ops.id, gone.id], "raised", {"id": 0, "repeats": 0}),
            Owed([gone.id, ops.id], "repeated", {"id": 0, "repeats": 1}),
        ],
    )
    # an alarm inserted: its id in each payload; a route gone: owed nothing
    first, second = owed
    assert first[1] is None and second[0] is None
    assert first[0] is not None and second[1] is not None and first[0] < second[1]
    assert await routes.owed() == [
        (first[0], ops.id, "raised", b'{"id":%d,"repeats":0}' % alarm_id),
        (second[1], ops.id, "repeated", b'{"id":%d,"repeats":1}' % alarm_id),
    ]
    assert (await registry.alarms.get(alarm_id)).repeats == 1
    again = msgspec.structs.replace(repeated, id=alarm_id, repeats=2)
    assert await registry.alarms.keep(again) == (alarm_id, [])


async def test_a_change_whose_notifications_cannot_be_kept_is_not_kept(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    ops = await registry.alarm_routes.create(
        RouteSpec(name="ops", kind="webhook", url="http://x/a"), "s"
    )
    table = registry.alarms
    alarm = new("oximeter-7", "SpO2 low")
    refuse_deliveries(registry_db, True)
    with pytest.raises(sa.exc.SQLAlchemyError, match="deliveries refused"):
        await table.keep(alarm, [Owed([ops.id], "raised", {})])
    assert await table.list_alarms(AlarmFilter()) == ([], 0)
    alarm_id, _ = await table.keep(alarm)  # (owing nothing: kept)
    kept = await table.get(alarm_id)
    again = msgspec.structs.replace(kept, repeats=1)
    with pytest.raises(sa.exc.SQLAlchemyError, match="deliveries refused"):
        await table.keep(again, [Owed([ops.id], "repeated", {})])
    assert await table.get(alarm_id) == kept
    refuse_deliveries(registry_db, False)
    _, [[delivery_id]] = await table.keep(again, [Owed([ops.id], "repeated", {})])
    assert delivery_id is not None and (await table.get(alarm_id)).repeats == 1
    assert [owed[0] for owed in await registry.alarm_routes.owed()] == [delivery_id]


async def test_cleared_alarms_past_their_retention_are_forgotten_with_their_notes(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    table = registry.alarms
    old = await kept(table, new("oximeter-1", "SpO2 low", at=T0))
    note = Note(at=T0 + 1, by="ana", text="seen")
    old = await kept(table, msgspec.structs.replace(old, updated_at=T0 + 1), note)
    old = await kept(table, transition(old, "clear", by="bo", now=T0 + 10))
    recent = await kept(table, new("oximeter-2", "SpO2 low", at=T0))
    recent = await kept(table, transition(recent, "clear", by="bo", now=T0 + 100))
    still_open = await kept(table, new("oximeter-3", "SpO2 low", at=T0))  # (open: any age)
    assert await table.prune(T0 + 50) == 1
    with pytest.raises(RegistryError):
        await table.get(old.id)
    assert (await table.get(recent.id)).status == "CLEARED_UNACK"
    assert (await table.get(still_open.id)).status == "ACTIVE_UNACK"
    assert await table.prune(T0 + 50) == 0
    # (its note went with it: none is left without its alarm)
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        with engine.connect() as db:
            notes = db.execute(sa.select(sa.func.count()).select_from(schema.alarm_notes))
            assert notes.scalar() == 0
    finally:
        engine.dispose()
