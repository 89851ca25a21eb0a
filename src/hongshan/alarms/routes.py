"""Where an alarm's changes are sent: a route (a webhook, or e-mail addresses), which alarms
it wants (a minimum severity, types) and which changes (raised, escalated, reminder,
acknowledged, cleared…). Data and the pure question ``wants``; sending is
``services.alarms.notify``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from hongshan.alarms.model import Alarm, Change, Severity, rank
from hongshan.identity.principals import DEFAULT_TENANT

RouteKind = Literal["webhook", "email"]
DEFAULT_CHANGES: tuple[Change, ...] = ("raised", "escalated", "reminder", "acknowledged", "cleared")
MAX_ADDRESSES = 50
MAX_RETRIES = 10
MAX_BACKOFF = 300.0
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


class RouteSpec(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A route as an operator writes it: ``kind`` ``webhook`` with ``url``, or ``email`` with
    ``to`` (addresses); the alarms it wants are those at least ``minSeverity`` and, when
    ``types`` is not empty, of those types; ``changes`` says which of their changes. A failed
    sending is tried ``retries`` more times, ``backoff`` seconds later and twice as long each
    next time."""

    name: str
    kind: RouteKind
    url: str | None = None
    to: Annotated[list[str], msgspec.Meta(max_length=MAX_ADDRESSES)] = []
    min_severity: Severity = "indeterminate"
    types: list[str] = []
    changes: list[Change] = msgspec.field(default_factory=lambda: list(DEFAULT_CHANGES))
    retries: int = 3
    backoff: float = 1.0


class StoredRoute(RouteSpec, kw_only=True, rename="camel"):
    """A route as kept: its spec, id, the secret its webhooks are signed with, how many
    notifications it sent and failed, and the last failure (``lastError``, when)."""

    id: int
    secret: str
    sent: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: int | None = None
    created_at: int = 0
    tenant: str = DEFAULT_TENANT  # it hears only the alarms of its tenant's devices


class Owed(msgspec.Struct, frozen=True):
    """One change of an alarm owed to the routes that want it: kept in the same transaction
    as the change (``alarm_deliveries``, an outbox) and until it is sent or given up.
    ``payload`` is the change as the alarms' stream says it; its ``id`` is the alarm's, which
    the registry sets (an alarm being inserted has none yet)."""

    route_ids: list[int]
    change: Change
    payload: dict[str, Any]


def route_problem(spec: RouteSpec) -> str | None:
    """What is wrong with a route, in words, or None."""
    if not spec.name.strip() or len(spec.name) > 64:
        return "a route's name is 1 to 64 characters"
    if spec.kind == "webhook":
        if spec.url is None or not spec.url.startswith(("http://", "https://")):
            return f"webhook: {spec.url!r} is no http:// or https:// URL"
        if spec.to:
            return "webhook: a webhook route has a url, not to (addresses)"
    else:
        if not spec.to:
            return "email: to names at least one address"
        if spec.url is not None:
            return "email: an e-mail route has to (addresses), not a url"
        for address in spec.to:
            if not _ADDRESS.match(address):
                return f"email: {address!r} is no e-mail address"
    if not spec.changes:
        return "changes: name at least one (raised, escalated, reminder, acknowledged, cleared…)"
    if not 0 <= spec.retries <= MAX_RETRIES:
        return f"retries {spec.retries} (0 to {MAX_RETRIES})"
    if not 0 <= spec.backoff <= MAX_BACKOFF:
        return f"backoff {spec.backoff:g} s (0 to {MAX_BACKOFF:g})"
    return None


def wants(route: RouteSpec, alarm: Alarm, change: Change) -> bool:
    """Whether ``route`` is sent this change of this alarm."""
    return (
        change in route.changes
        and rank(alarm.severity) >= rank(route.min_severity)
        and (not route.types or alarm.type in route.types)
    )
