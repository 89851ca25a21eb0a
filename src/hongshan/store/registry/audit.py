"""The audit log in the registry (``audit_log``): who changed what through the API, when, from
where and how it went. Written in batches (``services.people.audit.AuditLog`` queues them);
read newest first, filtered; pruned past its retention."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One attempt at a change. ``tenant`` None: of no tenant (the admin token's, an
    anonymous caller's). ``detail``: safe facts only (never a body: it may hold a password)."""

    at: int  # ms
    actor: str
    actor_kind: str  # token | user | key | anonymous
    address: str
    action: str  # "POST /api/products/{pk:str}/devices": the method and the route's template
    target: str  # the concrete path
    status: int
    tenant: str | None = None
    detail: dict[str, Any] | None = None
    id: int = 0  # the row's, once kept


@dataclass(frozen=True, kw_only=True)
class AuditFilter:
    """``tenant`` None: every tenant's records (the admin token's view); otherwise that
    tenant's only. ``since``/``until`` in ms, both inclusive."""

    tenant: str | None = None
    since: int | None = None
    until: int | None = None
    actor: str | None = None
    action: str | None = None
    status: int | None = None
    limit: int = 100
    offset: int = 0
    after: tuple[int, int] | None = None  # (at, id): it and newer ones skipped


# the columns' sizes (schema.audit_log): a longer value is cut rather than refused (the
# record is worth more than the last characters of a 600-character path)
_SIZES = {"actor": 64, "actor_kind": 16, "address": 64, "action": 64, "target": 512}


class AuditTable:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, entries: Sequence[AuditEntry]) -> None:
        rows = [_columns(entry) for entry in entries]

        def insert() -> None:
            with self._db.engine.begin() as db:
                db.execute(t.audit_log.insert(), rows)

        await self._db.run(insert)

    async def find(self, where: AuditFilter) -> tuple[list[AuditEntry], int]:
        """The records ``where`` asks for, newest first, and how many there are in all
        (without ``limit``, ``offset`` and ``after``)."""

        def query() -> tuple[list[Any], int]:
            a = t.audit_log.c
            conditions = _conditions(where)
            page = sa.select(t.audit_log).where(*conditions)
            if where.after is not None:
                at, row_id = where.after
                page = page.where(sa.or_(a.at < at, sa.and_(a.at == at, a.id < row_id)))
            page = page.order_by(a.at.desc(), a.id.desc()).limit(where.limit)
            page = page.offset(where.offset)
            count = sa.select(sa.func.count()).select_from(t.audit_log).where(*conditions)
            with self._db.engine.connect() as db:
                return list(db.execute(page)), int(db.execute(count).scalar_one())

        rows, total = await self._db.run(query)
        return [_entry(row) for row in rows], total

    async def prune(self, before: int) -> int:
        """Forget the records older than ``before`` (ms); how many went."""

        def delete() -> int:
            with self._db.engine.begin() as db:
                gone = t.audit_log.delete().where(t.audit_log.c.at < before)
                return int(db.execute(gone).rowcount)

        return await self._db.run(delete)


def _conditions(where: AuditFilter) -> list[sa.ColumnElement[bool]]:
    a = t.audit_log.c
    found: list[sa.ColumnElement[bool]] = []
    if where.tenant is not None:
        found.append(a.tenant == where.tenant)
    if where.since is not None:
        found.append(a.at >= where.since)
    if where.until is not None:
        found.append(a.at <= where.until)
    if where.actor is not None:
        found.append(a.actor == where.actor)
    if where.action is not None:
        found.append(a.action == where.action)
    if where.status is not None:
        found.append(a.status == where.status)
    return found


def _columns(entry: AuditEntry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant": entry.tenant,
        "at": entry.at,
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "address": entry.address,
        "action": entry.action,
        "target": entry.target,
        "status": entry.status,
        "detail": None if entry.detail is None else json.dumps(entry.detail),
    }
    for name, size in _SIZES.items():
        row[name] = row[name][:size]
    return row


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        tenant=row.tenant,
        at=row.at,
        actor=row.actor,
        actor_kind=row.actor_kind,
        address=row.address,
        action=row.action,
        target=row.target,
        status=row.status,
        detail=None if row.detail is None else json.loads(row.detail),
    )
