"""What an alarm's escalation policy asks for at a time: pure functions of (alarm, now), so
that escalation and reminders are tested on a fake clock and recomputed from the kept times
after a restart (never started again from zero).

- Escalation: once, ``after`` seconds from the alarm's first raise, while it is open and
  unacknowledged and less severe than ``to``: its severity becomes ``to``.
- Reminders: every ``remindEvery`` seconds from the first raise (or the last reminder), while
  it is open and unacknowledged. Reminders missed while the platform was down are one
  reminder, not a burst: the next counts from the one sent.
"""

from __future__ import annotations

import msgspec

from hongshan.alarms.model import Alarm, Change, rank


def _escalates_at(alarm: Alarm) -> int | None:
    policy = alarm.escalation
    if (
        policy is None
        or policy.after is None
        or policy.to is None
        or alarm.escalated_at is not None
        or rank(alarm.severity) >= rank(policy.to)
    ):
        return None
    return alarm.first_raised_at + round(policy.after * 1000)


def _reminds_at(alarm: Alarm) -> int | None:
    policy = alarm.escalation
    if policy is None or policy.remind_every is None:
        return None
    since = alarm.reminded_at if alarm.reminded_at is not None else alarm.first_raised_at
    return since + round(policy.remind_every * 1000)


def next_wake(alarm: Alarm) -> int | None:
    """When (ms) its policy next asks for something, or None: never (cleared, acknowledged,
    no policy, or nothing left to do)."""
    if not alarm.open or alarm.acknowledged:
        return None
    times = [t for t in (_escalates_at(alarm), _reminds_at(alarm)) if t is not None]
    return min(times) if times else None


def due(alarm: Alarm, now: int) -> tuple[Alarm, list[Change]]:
    """The alarm with what is due at ``now`` done — escalated, reminded, or both — and which;
    unchanged and ``[]`` when nothing is due."""
    if not alarm.open or alarm.acknowledged:
        return alarm, []
    changes: list[Change] = []
    escalates = _escalates_at(alarm)
    if escalates is not None and escalates <= now and alarm.escalation is not None:
        to = alarm.escalation.to
        assert to is not None
        alarm = msgspec.structs.replace(alarm, severity=to, escalated_at=now, updated_at=now)
        changes.append("escalated")
    reminds = _reminds_at(alarm)
    if reminds is not None and reminds <= now:
        alarm = msgspec.structs.replace(alarm, reminded_at=now, updated_at=now)
        changes.append("reminder")
    return alarm, changes
