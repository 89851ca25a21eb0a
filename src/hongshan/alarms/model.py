"""An alarm, its severity and status, and the one table of its status's transitions."""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

from hongshan.errors import HongshanError
from hongshan.things.model import EVERYWHERE, Reach

Severity = Literal["indeterminate", "warning", "minor", "major", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
"""Least to most severe (ThingsBoard's five)."""
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def rank(severity: Severity) -> int:
    """How severe: 0 (indeterminate) to 4 (critical)."""
    return _RANK[severity]


def more_severe(a: Severity, b: Severity) -> Severity:
    return a if rank(a) >= rank(b) else b


Status = Literal["ACTIVE_UNACK", "ACTIVE_ACK", "CLEARED_UNACK", "CLEARED_ACK"]
STATUSES: tuple[Status, ...] = get_args(Status)
OPEN: tuple[Status, ...] = ("ACTIVE_UNACK", "ACTIVE_ACK")
UNACKNOWLEDGED: tuple[Status, ...] = ("ACTIVE_UNACK", "CLEARED_UNACK")

Operation = Literal["acknowledge", "clear"]

TRANSITIONS: dict[tuple[Status, Operation], Status] = {
    ("ACTIVE_UNACK", "acknowledge"): "ACTIVE_ACK",
    ("ACTIVE_UNACK", "clear"): "CLEARED_UNACK",
    ("ACTIVE_ACK", "clear"): "CLEARED_ACK",
    ("CLEARED_UNACK", "acknowledge"): "CLEARED_ACK",
}
"""Every move of an alarm's status an operator (or a rule) can make; any other is refused
(``AlarmStateError``). Raising again is no transition: it changes an open alarm in place
(``raise_again``)."""

Change = Literal[
    "raised",
    "repeated",
    "escalated",
    "reminder",
    "acknowledged",
    "cleared",
    "assigned",
    "noted",
]
"""What happened to an alarm: what its notifications and its ``$things/…/alarms`` stream say."""
CHANGES: tuple[Change, ...] = get_args(Change)

OriginatorKind = Literal["rule", "scene", "condition", "event", "api"]


class AlarmStateError(HongshanError):
    """An acknowledgement or a clearing the alarm's status does not allow (409)."""

    http_status = 409


class Originator(msgspec.Struct, frozen=True, kw_only=True):
    """What raised an alarm: a rule (its id), a scene, a product's alarm condition, a
    device's thing-model event (its identifier), or an operator through the API."""

    kind: OriginatorKind
    id: str = ""


class Note(msgspec.Struct, frozen=True, kw_only=True):
    at: int  # ms since the epoch
    by: str
    text: str


class Escalation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An alarm's escalation policy: ``after`` seconds unacknowledged, its severity is raised
    to ``to`` (once); every ``remindEvery`` seconds until it is acknowledged (or cleared), a
    reminder is sent. Either part may be left out."""

    after: float | None = None
    to: Severity | None = None
    remind_every: float | None = None


MAX_ESCALATION_SECONDS = 30 * 86400.0


def escalation_problem(policy: Escalation) -> str | None:
    """What is wrong with a policy, in words, or None."""
    if (policy.after is None) != (policy.to is None):
        return "escalation: give both after (seconds) and to (a severity), or neither"
    for name, seconds in (("after", policy.after), ("remindEvery", policy.remind_every)):
        if seconds is not None and not 0 < seconds <= MAX_ESCALATION_SECONDS:
            return (
                f"escalation: {name} {seconds:g} s (more than 0, "
                f"at most {MAX_ESCALATION_SECONDS:g})"
            )
    return None


class Alarm(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One alarm of one device: ``type`` names what is wrong ("SpO2 low"); at most one of a
    device and type is open (uncleared) at a time, and raising it again counts a repeat on it.
    Times are ms since the epoch; ``id`` is 0 until it is kept."""

    id: int = 0
    product_key: str
    device_name: str
    type: str
    severity: Severity
    status: Status = "ACTIVE_UNACK"
    originator: Originator
    details: dict[str, Any] = {}
    first_raised_at: int
    last_raised_at: int
    repeats: int = 0  # raises after the first while it was open
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None
    cleared_at: int | None = None
    cleared_by: str | None = None
    assignee: str | None = None
    notes: list[Note] = []
    escalation: Escalation | None = None
    escalated_at: int | None = None  # when its policy raised the severity
    reminded_at: int | None = None  # the last reminder
    updated_at: int = 0

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def acknowledged(self) -> bool:
        return self.status not in UNACKNOWLEDGED


def raised(
    *,
    product_key: str,
    device_name: str,
    type: str,
    severity: Severity,
    originator: Originator,
    details: dict[str, Any],
    escalation: Escalation | None,
    now: int,
) -> Alarm:
    """A new alarm, ACTIVE_UNACK."""
    return Alarm(
        product_key=product_key,
        device_name=device_name,
        type=type,
        severity=severity,
        originator=originator,
        details=details,
        first_raised_at=now,
        last_raised_at=now,
        escalation=escalation,
        updated_at=now,
    )


def raise_again(
    alarm: Alarm,
    *,
    severity: Severity,
    details: dict[str, Any],
    escalation: Escalation | None,
    now: int,
) -> Alarm:
    """The open ``alarm`` raised once more: a repeat counted, its last time and details the
    new ones, its severity the more severe of the two (a repeat never lowers it). A repeat
    more severe than what was acknowledged is unacknowledged again: the operator acknowledged
    a lesser alarm. A new escalation policy replaces the old one."""
    assert alarm.open, "a cleared alarm is not raised again: a new one is"
    worse = rank(severity) > rank(alarm.severity)
    status: Status = "ACTIVE_UNACK" if worse else alarm.status
    return msgspec.structs.replace(
        alarm,
        severity=more_severe(alarm.severity, severity),
        status=status,
        details=details,
        last_raised_at=now,
        repeats=alarm.repeats + 1,
        acknowledged_at=None if worse else alarm.acknowledged_at,
        acknowledged_by=None if worse else alarm.acknowledged_by,
        escalation=escalation if escalation is not None else alarm.escalation,
        updated_at=now,
    )


def transition(alarm: Alarm, operation: Operation, *, by: str, now: int) -> Alarm:
    """The alarm acknowledged or cleared by ``by``; ``AlarmStateError`` naming its status when
    that status does not allow it."""
    status = TRANSITIONS.get((alarm.status, operation))
    if status is None:
        done = "acknowledged" if operation == "acknowledge" else "cleared"
        raise AlarmStateError(f"alarm {alarm.id} is {alarm.status}: it cannot be {done} again")
    if operation == "acknowledge":
        return msgspec.structs.replace(
            alarm, status=status, acknowledged_at=now, acknowledged_by=by, updated_at=now
        )
    return msgspec.structs.replace(
        alarm, status=status, cleared_at=now, cleared_by=by, updated_at=now
    )


StatusFilter = Literal[
    "ACTIVE_UNACK",
    "ACTIVE_ACK",
    "CLEARED_UNACK",
    "CLEARED_ACK",
    "ACTIVE",
    "CLEARED",
    "UNACK",
    "ACK",
]
"""One status, or ThingsBoard's search statuses: ``ACTIVE`` (open), ``CLEARED``, ``UNACK``,
``ACK``."""
_SEARCH: dict[str, tuple[Status, ...]] = {
    "ACTIVE": OPEN,
    "CLEARED": ("CLEARED_UNACK", "CLEARED_ACK"),
    "UNACK": UNACKNOWLEDGED,
    "ACK": ("ACTIVE_ACK", "CLEARED_ACK"),
}


def statuses_of(word: StatusFilter) -> tuple[Status, ...]:
    found = _SEARCH.get(word)
    return found if found is not None else (word,)  # type: ignore[return-value]


class AlarmFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What a list of alarms narrows by; every field left None matches everything. Newest
    (last raised) first."""

    status: StatusFilter | None = None
    severity: Severity | None = None
    min_severity: Severity | None = None
    product_key: str | None = None
    device_name: str | None = None
    type: str | None = None
    assignee: str | None = None
    text: str | None = None  # in the type, case-insensitive
    order: tuple[str, bool] = ("lastRaisedAt", True)  # (a field, descending)
    limit: int = 100
    offset: int = 0
    reach: Reach = EVERYWHERE  # the devices whose alarms may be listed
