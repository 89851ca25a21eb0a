"""Tracked commands in the registry: the ``commands`` and ``command_batches`` tables.

A command's row is inserted (and committed) before it is sent, so that nothing accepted is
lost; each later step writes the command's changing columns again through an ``Outbox`` (one
transaction for all that changed in a loop turn: a batch of 10,000 lamps is a few hundred
transactions, not 30,000), and every read takes what waits there first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.messages.commands import (
    CommandBatch,
    CommandKind,
    CommandRecord,
    CommandState,
    Target,
)
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database
from hongshan.store.registry.outbox import Outbox, Row
from hongshan.store.registry.reach import within
from hongshan.things.model import EVERYWHERE, Reach

MAX_ID = 2**63 - 1

_target = msgspec.json.Decoder(Target)
_CHANGING = ("state", "call_id", "sent_at", "finished_at", "outcome", "code", "output", "message")


class CommandFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What ``list_commands`` narrows by; None matches everything. Newest first."""

    product_key: str | None = None
    device_name: str | None = None
    state: CommandState | None = None
    origin: str | None = None
    batch: int | None = None
    order: tuple[str, bool] = ("createdAt", True)  # (a field of COMMAND_ORDERS, descending)
    limit: int = 100
    offset: int = 0
    reach: Reach = EVERYWHERE  # the devices whose commands may be listed


COMMAND_ORDERS: dict[str, sa.Column[Any]] = {
    "createdAt": t.commands.c.id,  # (ids are given in order of creation)
    "deviceName": t.commands.c.device_name,
    "state": t.commands.c.state,
    "service": t.commands.c.service,
}
"""What a list of commands may be sorted by (``CommandFilter.order``)."""


def _narrowed(select: Any, where: CommandFilter) -> Any:
    c = t.commands.c
    select = select.where(within(where.reach, c.product_key, c.device_name))
    if where.product_key is not None:
        select = select.where(c.product_key == where.product_key)
    if where.device_name is not None:
        select = select.where(c.device_name == where.device_name)
    if where.state is not None:
        select = select.where(c.state == where.state.value)
    if where.origin is not None:
        select = select.where(c.origin == where.origin)
    if where.batch is not None:
        # (an id past a 64-bit integer is no batch: SQLite would overflow on it)
        in_range = 0 < where.batch <= MAX_ID
        select = select.where(c.batch_id == where.batch if in_range else sa.false())
    return select


class CommandTable:
    """The rows of tracked commands and their batches. Keeps what it is given and answers
    ``CommandRecord``s; never decides a state (``DeviceCommands`` does, by the table in
    ``messages.commands``)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._outbox: Outbox[int] = Outbox(db, self._write_changes, lambda _id, _row: True)

    async def add(self, records: list[CommandRecord], batch: CommandBatch | None = None) -> None:
        """Insert ``records`` (and their ``batch``) in one transaction, giving each its id
        (and the batch its id, set on the records too)."""

        def insert() -> tuple[int | None, list[int]]:
            with self._db.engine.begin() as db:
                batch_id = None
                if batch is not None:
                    inserted = db.execute(t.command_batches.insert().values(_batch_row(batch)))
                    assert inserted.inserted_primary_key is not None
                    batch_id = int(inserted.inserted_primary_key[0])
                rows = [{**_row(record), "batch_id": batch_id} for record in records]
                if not rows:
                    return batch_id, []
                if len(rows) == 1:
                    one = db.execute(t.commands.insert().values(rows[0]))
                    assert one.inserted_primary_key is not None
                    return batch_id, [int(one.inserted_primary_key[0])]
                result = db.execute(
                    t.commands.insert().returning(t.commands.c.id, sort_by_parameter_order=True),
                    rows,
                )
                return batch_id, [int(row.id) for row in result]

        batch_id, ids = await self._db.run(insert)
        if batch is not None and batch_id is not None:
            batch.id = batch_id
        for record, command_id in zip(records, ids, strict=True):
            record.id = command_id
            record.batch = batch_id

    def changed(self, record: CommandRecord) -> None:
        """Write the record's changing columns (state, times, result) soon, nobody waiting."""
        self._outbox.put(record.id, {"b_id": record.id, **_changing(record)})

    @staticmethod
    def _write_changes(db: sa.Connection, rows: list[Row]) -> None:
        c = t.commands.c
        update = (
            t.commands.update()
            .where(c.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(name) for name in _CHANGING})
        )
        db.execute(update, rows)

    async def get(self, command_id: int) -> CommandRecord | None:
        if not 0 < command_id <= MAX_ID:
            return None

        def query() -> Any:
            self._outbox.flush()
            with self._db.engine.connect() as db:
                return db.execute(
                    sa.select(t.commands).where(t.commands.c.id == command_id)
                ).first()

        row = await self._db.run(query)
        return None if row is None else _record(row)

    async def list_commands(self, where: CommandFilter) -> list[CommandRecord]:
        def query() -> list[Any]:
            self._outbox.flush()
            field, descending = where.order
            column, tie = COMMAND_ORDERS[field], t.commands.c.id
            order = (column.desc(), tie.desc()) if descending else (column.asc(), tie.asc())
            select = _narrowed(sa.select(t.commands), where).order_by(*order)
            with self._db.engine.connect() as db:
                return list(db.execute(select.limit(where.limit).offset(where.offset)))

        return [_record(row) for row in await self._db.run(query)]

    async def count_commands(self, where: CommandFilter) -> int:
        def query() -> int:
            self._outbox.flush()
            select = _narrowed(sa.select(sa.func.count()).select_from(t.commands), where)
            with self._db.engine.connect() as db:
                return int(db.execute(select).scalar_one())

        return await self._db.run(query)

    async def in_states(
        self, states: Iterable[CommandState], *, since: int = 0, newest: int | None = None
    ) -> list[CommandRecord]:
        """The commands in these states created at ``since`` (ms) or later — the ``newest``
        of them when given — oldest first (at start: the queue, the unanswered)."""
        names = [state.value for state in states]

        def query() -> list[Any]:
            self._outbox.flush()
            c = t.commands.c
            select = sa.select(t.commands).where(c.state.in_(names), c.created_at >= since)
            if newest is not None:
                select = select.order_by(c.id.desc()).limit(newest)
            with self._db.engine.connect() as db:
                return sorted(db.execute(select), key=lambda row: int(row.id))

        return [_record(row) for row in await self._db.run(query)]

    async def batch(self, batch_id: int, reach: Reach = EVERYWHERE) -> CommandBatch | None:
        """The batch, its commands counted by state. Within a ``reach`` narrower than
        everywhere (a tenant's, a group-limited principal's) only the commands of the devices
        in it are counted, and ``total`` is theirs: a batch the admin token sent across
        tenants tells no tenant how many devices the others have."""
        if not 0 < batch_id <= MAX_ID:
            return None

        def query() -> tuple[Any, list[Any]]:
            self._outbox.flush()
            b, c = t.command_batches, t.commands.c
            with self._db.engine.connect() as db:
                row = db.execute(sa.select(b).where(b.c.id == batch_id)).first()
                counts = db.execute(
                    sa.select(c.state, sa.func.count())
                    .where(c.batch_id == batch_id)
                    .where(within(reach, c.product_key, c.device_name))
                    .group_by(c.state)
                )
                return row, list(counts)

        row, counts = await self._db.run(query)
        if row is None:
            return None
        counted = {state: int(count) for state, count in counts}
        return CommandBatch(
            id=row.id,
            target=_target.decode(row.target),
            kind=CommandKind(row.kind),
            service=row.service,
            params=msgspec.json.decode(row.params),
            origin=row.origin,
            wait=row.wait,
            ttl=row.ttl,
            created_at=row.created_at,
            total=row.total if reach == EVERYWHERE else sum(counted.values()),
            counts=counted,
        )

    async def prune(self, before: int, keep_rows: int) -> int:
        """Forget finished commands created before ``before`` (ms), and the oldest finished
        ones past the newest ``keep_rows``; queued ones are kept whatever their age. Batches
        left without a command go too. Answers how many commands went."""

        def delete() -> int:
            self._outbox.flush()
            c = t.commands.c
            with self._db.engine.begin() as db:
                gone = db.execute(
                    t.commands.delete().where(
                        c.created_at < before, c.state != CommandState.QUEUED.value
                    )
                ).rowcount
                newest = db.execute(
                    sa.select(c.id).order_by(c.id.desc()).offset(keep_rows).limit(1)
                ).scalar_one_or_none()
                if newest is not None:
                    gone += db.execute(
                        t.commands.delete().where(
                            c.id <= newest, c.state != CommandState.QUEUED.value
                        )
                    ).rowcount
                b = t.command_batches
                used = sa.select(c.batch_id).where(c.batch_id.is_not(None)).distinct()
                db.execute(b.delete().where(b.c.id.not_in(used)))
                return int(gone)

        return await self._db.run(delete)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _row(record: CommandRecord) -> Row:
    return {
        "product_key": record.product_key,
        "device_name": record.device_name,
        "kind": record.kind.value,
        "service": record.service,
        "params": _json(record.params),
        "origin": record.origin,
        "wait": record.wait,
        "ttl": record.ttl,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        **_changing(record),
    }


def _changing(record: CommandRecord) -> Row:
    return {
        "state": record.state.value,
        "call_id": record.call_id,
        "sent_at": record.sent_at,
        "finished_at": record.finished_at,
        "outcome": record.outcome,
        "code": record.code,
        "output": None if record.output is None else _json(record.output),
        "message": record.message,
    }


def _batch_row(batch: CommandBatch) -> Row:
    return {
        "target": _json(batch.target),
        "kind": batch.kind.value,
        "service": batch.service,
        "params": _json(batch.params),
        "origin": batch.origin,
        "wait": batch.wait,
        "ttl": batch.ttl,
        "total": batch.total,
        "created_at": batch.created_at,
    }


def _record(row: Any) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        batch=row.batch_id,
        product_key=row.product_key,
        device_name=row.device_name,
        kind=CommandKind(row.kind),
        service=row.service,
        params=msgspec.json.decode(row.params),
        origin=row.origin,
        state=CommandState(row.state),
        call_id=row.call_id,
        wait=row.wait,
        ttl=row.ttl,
        created_at=row.created_at,
        sent_at=row.sent_at,
        finished_at=row.finished_at,
        expires_at=row.expires_at,
        outcome=row.outcome,
        code=row.code,
        output=None if row.output is None else msgspec.json.decode(row.output),
        message=row.message,
    )
