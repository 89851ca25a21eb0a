"""Alarms in the registry (``alarms``, ``alarm_notes``), the routes of their notifications
(``alarm_routes``) and the notifications owed (``alarm_deliveries``, an outbox), written in
the transaction of the change that owes them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.alarms.model import (
    Alarm,
    AlarmFilter,
    Escalation,
    Note,
    Originator,
    rank,
    statuses_of,
)
from hongshan.alarms.routes import Owed, RouteSpec, StoredRoute
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, contains, now_ms
from hongshan.store.registry.reach import owned, tenant_known, within
from hongshan.things.model import EVERYWHERE, Reach, RegistryError

MAX_ID = 2**31 - 1  # (an INTEGER column's range on PostgreSQL)
_details = msgspec.json.Decoder(dict[str, Any])
_escalation = msgspec.json.Decoder(Escalation)
_texts = msgspec.json.Decoder(list[str])
_encode = msgspec.json.encode


class AlarmTable:
    """The ``alarms`` and ``alarm_notes`` tables: keeps alarms as the service hands them over,
    each change with the notifications it owes (``alarm_deliveries``) in one transaction
    (their lifecycle is decided in ``alarms.model``, never here), and answers them with their
    notes. The partial unique index ``alarms_open`` refuses a second open alarm of one
    device and type (a conflict)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_of(self, product_key: str, device_name: str, type: str) -> Alarm | None:
        """The open alarm of that device and type, if there is one."""
        a = t.alarms.c

        def query() -> Any:
            with self._db.engine.connect() as db:
                return db.execute(
                    sa.select(t.alarms).where(
                        sa.not_(a.cleared),
                        a.product_key == product_key,
                        a.device_name == device_name,
                        a.type == type,
                    )
                ).first()

        row = await self._db.run(query)
        return None if row is None else await self.get(row.id)

    async def keep(
        self, alarm: Alarm, owed: Sequence[Owed] = (), *, note: Note | None = None
    ) -> tuple[int, list[list[int | None]]]:
        """Keep ``alarm`` — inserted when its id is 0 (a conflict when its device and type
        have an open alarm already), else its fields written (``not_found`` when it is gone;
        its notes are not written: ``note`` is added) — and the notifications its changes
        owe (``owed``) in ONE transaction: a change is never kept without what it owes, nor
        owed without being kept. Returns its id, and each owed change's delivery ids by
        route (None: a route deleted meanwhile, which takes what it was owed with it)."""

        def write() -> tuple[int, list[list[int | None]]]:
            with self._db.engine.begin() as db:
                alarm_id = _write(db, alarm)
                if note is not None:
                    db.execute(
                        t.alarm_notes.insert().values(
                            alarm_id=alarm_id, at=note.at, by=note.by, text=note.text
                        )
                    )
                return alarm_id, _owe(db, alarm_id, owed)

        return await self._db.run(write)

    async def get(self, alarm_id: int) -> Alarm:
        _check_id(alarm_id)

        def query() -> tuple[Any, list[Any]]:
            with self._db.engine.connect() as db:
                row = db.execute(sa.select(t.alarms).where(t.alarms.c.id == alarm_id)).first()
                if row is None:
                    raise RegistryError(f"no alarm {alarm_id}", "not_found")
                return row, _notes_of(db, [alarm_id])

        row, notes = await self._db.run(query)
        return _alarm(row, notes)

    async def list_alarms(self, where: AlarmFilter) -> tuple[list[Alarm], int]:
        """A page of the alarms ``where`` picks, newest raise first, and how many it picks."""
        condition = _condition(where)

        def query() -> tuple[list[Any], list[Any], int]:
            with self._db.engine.connect() as db:
                rows = list(
                    db.execute(
                        sa.select(t.alarms)
                        .where(*condition)
                        .order_by(*_ordered(where.order))
                        .limit(where.limit)
                        .offset(where.offset)
                    )
                )
                total = db.execute(
                    sa.select(sa.func.count()).select_from(t.alarms).where(*condition)
                ).scalar_one()
                return rows, _notes_of(db, [row.id for row in rows]), int(total)

        rows, notes, total = await self._db.run(query)
        return [_alarm(row, notes) for row in rows], total

    async def list_open(self) -> list[Alarm]:
        """Every open alarm (what the escalation timers start from)."""
        alarms, _ = await self.list_alarms(AlarmFilter(status="ACTIVE", limit=2**31 - 1))
        return alarms

    async def prune(self, before: int) -> int:
        """Forget the alarms cleared before ``before`` (ms), their notes with them; an open
        alarm is kept whatever its age. How many went."""

        def delete() -> int:
            a = t.alarms.c
            with self._db.engine.begin() as db:
                gone = t.alarms.delete().where(a.cleared, a.cleared_at < before)
                return int(db.execute(gone).rowcount)

        return await self._db.run(delete)


def _write(db: sa.Connection, alarm: Alarm) -> int:
    """The alarm's row inserted (id 0) or updated, on the thread; its id."""
    if alarm.id:
        result = db.execute(
            t.alarms.update().where(t.alarms.c.id == alarm.id).values(**_columns(alarm))
        )
        if result.rowcount == 0:
            raise RegistryError(f"no alarm {alarm.id}", "not_found")
        return alarm.id
    try:
        inserted = db.execute(t.alarms.insert().values(**_columns(alarm))).inserted_primary_key
    except sa.exc.IntegrityError:
        raise RegistryError(
            f"{alarm.product_key}/{alarm.device_name} has an open {alarm.type!r} alarm already",
            "conflict",
        ) from None
    assert inserted is not None  # (an INSERT of one row)
    return int(inserted[0])


def _owe(db: sa.Connection, alarm_id: int, owed: Sequence[Owed]) -> list[list[int | None]]:
    """The rows of ``alarm_deliveries`` for what ``owed`` says, on the thread, but for routes
    deleted since the service chose them; their ids, as ``owed`` lists the routes."""
    wanted = {route_id for one in owed for route_id in one.route_ids}
    if not wanted:
        return [[] for _ in owed]
    routes = t.alarm_routes.c
    existing = set(db.execute(sa.select(routes.id).where(routes.id.in_(wanted))).scalars())
    at = now_ms()
    rows = []
    for one in owed:
        payload = _encode({**one.payload, "id": alarm_id}).decode()
        rows += [
            {"route_id": route_id, "change": one.change, "payload": payload, "created_at": at}
            for route_id in one.route_ids
            if route_id in existing
        ]
    ids: Iterator[int] = iter([])
    if rows:
        d = t.alarm_deliveries
        ids = iter(
            db.execute(d.insert().returning(d.c.id, sort_by_parameter_order=True), rows).scalars()
        )
    return [
        [next(ids) if route_id in existing else None for route_id in one.route_ids] for one in owed
    ]


def _check_id(alarm_id: int) -> None:
    if not 0 < alarm_id <= MAX_ID:
        raise RegistryError(f"no alarm {alarm_id}", "not_found")


ALARM_ORDERS: dict[str, sa.Column[Any]] = {
    "lastRaisedAt": t.alarms.c.last_raised_at,
    "firstRaisedAt": t.alarms.c.first_raised_at,
    "updatedAt": t.alarms.c.updated_at,
    "severity": t.alarms.c.severity_rank,
    "status": t.alarms.c.status,
    "type": t.alarms.c.type,
    "deviceName": t.alarms.c.device_name,
}
"""What a list of alarms may be sorted by (``AlarmFilter.order``)."""


def _ordered(order: tuple[str, bool]) -> tuple[Any, Any]:
    field, descending = order
    column = ALARM_ORDERS[field]
    if descending:
        return column.desc(), t.alarms.c.id.desc()
    return column.asc(), t.alarms.c.id.asc()


def _condition(where: AlarmFilter) -> list[Any]:
    a = t.alarms.c
    condition: list[Any] = []
    if where.status is not None:
        condition.append(a.status.in_(statuses_of(where.status)))
    if where.severity is not None:
        condition.append(a.severity == where.severity)
    if where.min_severity is not None:
        condition.append(a.severity_rank >= rank(where.min_severity))
    for column, value in (
        (a.product_key, where.product_key),
        (a.device_name, where.device_name),
        (a.type, where.type),
        (a.assignee, where.assignee),
    ):
        if value is not None:
            condition.append(column == value)
    if where.text:
        condition.append(contains(a.type, where.text))
    condition.append(within(where.reach, a.product_key, a.device_name))
    return condition


def _notes_of(db: sa.Connection, ids: list[int]) -> list[Any]:
    if not ids:
        return []
    n = t.alarm_notes.c
    return list(db.execute(sa.select(t.alarm_notes).where(n.alarm_id.in_(ids)).order_by(n.id)))


def _columns(alarm: Alarm) -> dict[str, Any]:
    return {
        "product_key": alarm.product_key,
        "device_name": alarm.device_name,
        "type": alarm.type,
        "severity": alarm.severity,
        "severity_rank": rank(alarm.severity),
        "status": alarm.status,
        "cleared": not alarm.open,
        "originator_kind": alarm.originator.kind,
        "originator_id": alarm.originator.id,
        "details": _encode(alarm.details).decode(),
        "escalation": None if alarm.escalation is None else _encode(alarm.escalation).decode(),
        "first_raised_at": alarm.first_raised_at,
        "last_raised_at": alarm.last_raised_at,
        "repeats": alarm.repeats,
        "acknowledged_at": alarm.acknowledged_at,
        "acknowledged_by": alarm.acknowledged_by,
        "cleared_at": alarm.cleared_at,
        "cleared_by": alarm.cleared_by,
        "assignee": alarm.assignee,
        "escalated_at": alarm.escalated_at,
        "reminded_at": alarm.reminded_at,
        "updated_at": alarm.updated_at,
    }


def _alarm(row: Any, notes: list[Any]) -> Alarm:
    return Alarm(
        id=row.id,
        product_key=row.product_key,
        device_name=row.device_name,
        type=row.type,
        severity=row.severity,
        status=row.status,
        originator=Originator(kind=row.originator_kind, id=row.originator_id),
        details=_details.decode(row.details),
        first_raised_at=row.first_raised_at,
        last_raised_at=row.last_raised_at,
        repeats=row.repeats,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        cleared_at=row.cleared_at,
        cleared_by=row.cleared_by,
        assignee=row.assignee,
        notes=[Note(at=n.at, by=n.by, text=n.text) for n in notes if n.alarm_id == row.id],
        escalation=None if row.escalation is None else _escalation.decode(row.escalation),
        escalated_at=row.escalated_at,
        reminded_at=row.reminded_at,
        updated_at=row.updated_at,
    )


def _route_columns(spec: RouteSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "target": spec.url if spec.kind == "webhook" else _encode(spec.to).decode(),
        "min_severity": spec.min_severity,
        "types": _encode(spec.types).decode(),
        "changes": _encode(spec.changes).decode(),
        "retries": spec.retries,
        "backoff": spec.backoff,
    }


def _route_context(route_id: int) -> str:
    return f"alarm-route:{route_id}"


class RouteTable:
    """The ``alarm_routes`` table: routes as their operator wrote them (checked before they
    get here), their secret sealed, and what their sending did (counts, the last failure)."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def create(
        self, spec: RouteSpec, secret: str, tenant: str = DEFAULT_TENANT
    ) -> StoredRoute:
        def insert() -> int:
            with self._db.engine.begin() as db:
                tenant_known(db, tenant)
                try:
                    result = db.execute(
                        t.alarm_routes.insert().values(
                            **_route_columns(spec),
                            secret="",
                            sent=0,
                            failed=0,
                            created_at=now_ms(),
                            tenant=tenant,
                        )
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(
                        f"a route is named {spec.name} already", "conflict"
                    ) from None
                inserted = result.inserted_primary_key
                assert inserted is not None
                route_id = int(inserted[0])
                sealed = self._box.seal(secret, _route_context(route_id))
                db.execute(
                    t.alarm_routes.update()
                    .where(t.alarm_routes.c.id == route_id)
                    .values(secret=sealed)
                )
                return route_id

        return await self.get(await self._db.run(insert))

    async def list_routes(self, reach: Reach = EVERYWHERE) -> list[StoredRoute]:
        """The routes of ``reach``'s tenant (every one's for the admin token's)."""
        r = t.alarm_routes

        def query() -> list[Any]:
            select = sa.select(r).where(owned(reach, r.c.tenant)).order_by(r.c.id)
            with self._db.engine.connect() as db:
                return list(db.execute(select))

        return [self._route(row) for row in await self._db.run(query)]

    async def get(self, route_id: int) -> StoredRoute:
        if not 0 < route_id <= MAX_ID:
            raise RegistryError(f"no route {route_id}", "not_found")

        def query() -> Any:
            with self._db.engine.connect() as db:
                return db.execute(
                    sa.select(t.alarm_routes).where(t.alarm_routes.c.id == route_id)
                ).first()

        row = await self._db.run(query)
        if row is None:
            raise RegistryError(f"no route {route_id}", "not_found")
        return self._route(row)

    async def update(self, route_id: int, spec: RouteSpec) -> StoredRoute:
        """The route as ``spec`` says (its id, secret and counts stay)."""
        if not 0 < route_id <= MAX_ID:
            raise RegistryError(f"no route {route_id}", "not_found")

        def update() -> None:
            with self._db.engine.begin() as db:
                try:
                    result = db.execute(
                        t.alarm_routes.update()
                        .where(t.alarm_routes.c.id == route_id)
                        .values(**_route_columns(spec))
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(
                        f"a route is named {spec.name} already", "conflict"
                    ) from None
                if result.rowcount == 0:
                    raise RegistryError(f"no route {route_id}", "not_found")

        await self._db.run(update)
        return await self.get(route_id)

    async def delete(self, route_id: int) -> None:
        if not 0 < route_id <= MAX_ID:
            raise RegistryError(f"no route {route_id}", "not_found")

        def delete() -> None:
            with self._db.engine.begin() as db:
                result = db.execute(t.alarm_routes.delete().where(t.alarm_routes.c.id == route_id))
                if result.rowcount == 0:
                    raise RegistryError(f"no route {route_id}", "not_found")

        await self._db.run(delete)

    async def owed(self) -> list[tuple[int, int, str, bytes]]:
        """The notifications still owed, oldest first: (id, route id, change, payload)."""
        d = t.alarm_deliveries.c

        def query() -> list[Any]:
            with self._db.engine.connect() as db:
                return list(db.execute(sa.select(t.alarm_deliveries).order_by(d.id)))

        rows = await self._db.run(query)
        return [(row.id, row.route_id, row.change, row.payload.encode()) for row in rows]

    async def sent(
        self, route_id: int, error: str | None, at: int, delivery_id: int | None = None
    ) -> None:
        """Count one sending of the route, failed with ``error`` or not, and forget the
        notification owed (``delivery_id``) — one transaction (a route deleted in the
        meantime is no longer counted)."""
        c = t.alarm_routes.c
        if error is None:
            values: dict[str, Any] = {"sent": c.sent + 1}
        else:
            values = {"failed": c.failed + 1, "last_error": error, "last_error_at": at}

        def update() -> None:
            with self._db.engine.begin() as db:
                db.execute(t.alarm_routes.update().where(c.id == route_id).values(**values))
                if delivery_id is not None:
                    db.execute(
                        t.alarm_deliveries.delete().where(t.alarm_deliveries.c.id == delivery_id)
                    )

        await self._db.run(update)

    def _route(self, row: Any) -> StoredRoute:
        webhook = row.kind == "webhook"
        return StoredRoute(
            id=row.id,
            name=row.name,
            kind=row.kind,
            url=row.target if webhook else None,
            to=[] if webhook else _texts.decode(row.target),
            min_severity=row.min_severity,
            types=_texts.decode(row.types),
            changes=msgspec.json.decode(row.changes),
            retries=row.retries,
            backoff=row.backoff,
            secret=self._box.open(row.secret, _route_context(row.id)),
            sent=row.sent,
            failed=row.failed,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
            created_at=row.created_at,
            tenant=row.tenant,
        )
