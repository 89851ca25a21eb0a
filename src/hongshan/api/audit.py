"""``GET /api/audit``: the audit log, newest first, filtered and paged — an admin's, of their
tenant (the admin token's: every record). As CSV (``format=csv``, or ``Accept: text/csv``):
every record the filters choose, streamed, with a header row; text a spreadsheet would run
as a formula is written with a leading ``'``."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import get
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream

from hongshan.api.dependencies import Provided
from hongshan.api.history import CSV, csv_line, parse_time
from hongshan.identity.principals import Principal, Role
from hongshan.services.people.audit import AuditLog
from hongshan.store.history.buckets import bucket_label
from hongshan.store.registry.audit import AuditEntry, AuditFilter

MAX_OFFSET = 2**31 - 1
CSV_PAGE = 1000
CSV_COLUMNS = (
    "id", "at", "time", "tenant", "actor", "actorKind", "address", "action", "target",
    "status", "detail",
)  # fmt: skip


class AuditRecord(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    at: int  # ms
    tenant: str | None
    actor: str
    actor_kind: str  # token | user | key | anonymous
    address: str
    action: str
    target: str
    status: int
    detail: dict[str, Any] | None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditRecord]
    total: int


def _record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=entry.id,
        at=entry.at,
        tenant=entry.tenant,
        actor=entry.actor,
        actor_kind=entry.actor_kind,
        address=entry.address,
        action=entry.action,
        target=entry.target,
        status=entry.status,
        detail=entry.detail,
    )


@get("/api/audit", opt={"role": Role.ADMIN})
async def list_audit(
    audit: Provided[AuditLog],
    principal: Provided[Principal],
    since: Annotated[str | None, QueryParameter(description="ms or ISO 8601 (UTC)")] = None,
    until: Annotated[str | None, QueryParameter(description="ms or ISO 8601 (UTC)")] = None,
    actor: Annotated[str | None, QueryParameter(description="a principal's name")] = None,
    action: Annotated[str | None, QueryParameter(description="e.g. 'POST /api/keys'")] = None,
    status: Annotated[int | None, QueryParameter(ge=100, le=599)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
    output: Annotated[Literal["json", "csv"] | None, QueryParameter(name="format")] = None,
    accept: Annotated[str | None, HeaderParameter(name="accept")] = None,
) -> Any:
    """Who changed what, when and from where; newest first."""
    where = AuditFilter(
        tenant=principal.tenant,
        since=None if since is None else parse_time(since, 0, "UTC"),
        until=None if until is None else parse_time(until, 0, "UTC"),
        actor=actor,
        action=action,
        status=status,
        limit=limit,
        offset=offset,
    )
    if output == "csv" or (output is None and "text/csv" in (accept or "")):
        return Stream(_csv(audit, where), headers={"content-type": CSV})
    items, total = await audit.find(where)
    return AuditPage(items=[_record(entry) for entry in items], total=total)


async def _csv(audit: AuditLog, where: AuditFilter) -> AsyncIterator[bytes]:
    """Every record ``where`` chooses (not only a page), a page at a time."""
    yield csv_line(CSV_COLUMNS)
    after: tuple[int, int] | None = None
    while True:
        page = dataclasses.replace(where, limit=CSV_PAGE, offset=0, after=after)
        found, _ = await audit.find(page)
        for e in found:
            yield csv_line(
                [
                    e.id, e.at, bucket_label(e.at, "UTC"), e.tenant, e.actor, e.actor_kind,
                    e.address, e.action, e.target, e.status, e.detail,
                ]
            )  # fmt: skip
        if len(found) < CSV_PAGE:
            return
        after = (found[-1].at, found[-1].id)


ROUTES = (list_audit,)
