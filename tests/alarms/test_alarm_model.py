"""The alarm domain, pure: ThingsBoard's four statuses and their table, repeats on the one open
alarm of a device and type, and escalation and reminders on a fake clock."""

from __future__ import annotations

import pytest

from hongshan.alarms.escalation import due, next_wake
from hongshan.alarms.model import (
    SEVERITIES,
    STATUSES,
    TRANSITIONS,
    Alarm,
    AlarmStateError,
    Escalation,
    Operation,
    Originator,
    Status,
    escalation_problem,
    raise_again,
    raised,
    transition,
)

T0 = 1_800_000_000_000


def alarm(
    severity: str = "minor", escalation: Escalation | None = None, status: Status = "ACTIVE_UNACK"
) -> Alarm:
    made = raised(
        product_key="clinic-1",
        device_name="oximeter-7",
        type="SpO2 low",
        severity=severity,  # type: ignore[arg-type]
        originator=Originator(kind="rule", id="3"),
        details={"spo2": 88},
        escalation=escalation,
        now=T0,
    )
    if status in ("ACTIVE_ACK", "CLEARED_ACK"):
        made = transition(made, "acknowledge", by="ana", now=T0 + 1)
    if status in ("CLEARED_UNACK", "CLEARED_ACK"):
        made = transition(made, "clear", by="ana", now=T0 + 2)
    assert made.status == status
    return made


def test_severities_are_ordered_least_to_most() -> None:
    assert SEVERITIES == ("indeterminate", "warning", "minor", "major", "critical")


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("operation", ["acknowledge", "clear"])
def test_every_status_and_operation_follows_the_table(status: Status, operation: Operation) -> None:
    before = alarm(status=status)
    after_ = TRANSITIONS.get((status, operation))
    if after_ is None:
        with pytest.raises(AlarmStateError) as refused:
            transition(before, operation, by="bo", now=T0 + 9)
        assert status in str(refused.value) and refused.value.http_status == 409
        return
    moved = transition(before, operation, by="bo", now=T0 + 9)
    assert moved.status == after_ and moved.updated_at == T0 + 9
    if operation == "acknowledge":
        assert (moved.acknowledged_at, moved.acknowledged_by) == (T0 + 9, "bo")
        assert moved.cleared_at == before.cleared_at
    else:
        assert (moved.cleared_at, moved.cleared_by) == (T0 + 9, "bo")
        assert moved.acknowledged_at == before.acknowledged_at


def test_a_repeat_counts_and_never_lowers_the_severity() -> None:
    first = alarm("major")
    again = raise_again(first, severity="minor", details={"spo2": 87}, escalation=None, now=T0 + 5)
    assert (again.repeats, again.severity, again.details) == (1, "major", {"spo2": 87})
    assert (again.first_raised_at, again.last_raised_at) == (T0, T0 + 5)
    worse = raise_again(again, severity="critical", details={}, escalation=None, now=T0 + 6)
    assert (worse.repeats, worse.severity) == (2, "critical")


def test_a_more_severe_repeat_is_unacknowledged_again_a_lesser_one_is_not() -> None:
    acked = alarm("minor", status="ACTIVE_ACK")
    same = raise_again(acked, severity="minor", details={}, escalation=None, now=T0 + 5)
    assert same.status == "ACTIVE_ACK" and same.acknowledged_by == "ana"
    worse = raise_again(acked, severity="major", details={}, escalation=None, now=T0 + 5)
    assert worse.status == "ACTIVE_UNACK" and worse.acknowledged_at is None


def test_a_cleared_alarm_is_never_raised_again() -> None:
    with pytest.raises(AssertionError):
        raise_again(alarm(status="CLEARED_UNACK"), severity="minor", details={}, escalation=None,
                    now=T0)  # fmt: skip


POLICY = Escalation(after=60, to="critical", remind_every=25)


def test_escalation_after_its_time_once_then_reminders_until_acknowledged() -> None:
    start = alarm("minor", POLICY)
    assert next_wake(start) == T0 + 25_000
    assert due(start, T0 + 24_999) == (start, [])
    reminded, changes = due(start, T0 + 25_000)
    assert changes == ["reminder"] and reminded.reminded_at == T0 + 25_000
    assert reminded.severity == "minor" and next_wake(reminded) == T0 + 50_000
    reminded, changes = due(reminded, T0 + 50_000)
    assert next_wake(reminded) == T0 + 60_000
    escalated, changes = due(reminded, T0 + 60_000)
    assert changes == ["escalated"] and escalated.severity == "critical"
    assert escalated.escalated_at == T0 + 60_000 and next_wake(escalated) == T0 + 75_000
    acked = transition(escalated, "acknowledge", by="ana", now=T0 + 61_000)
    assert next_wake(acked) is None and due(acked, T0 + 99_000) == (acked, [])


def test_reminders_missed_while_down_are_one_and_count_from_it() -> None:
    start = alarm("major", Escalation(remind_every=10))
    late, changes = due(start, T0 + 95_000)  # (nine were due while the platform was down)
    assert changes == ["reminder"] and next_wake(late) == T0 + 105_000


def test_an_alarm_already_as_severe_is_not_escalated_and_a_cleared_one_waits_for_nothing() -> None:
    assert next_wake(alarm("critical", Escalation(after=1, to="major"))) is None
    assert next_wake(alarm("minor", POLICY, status="CLEARED_UNACK")) is None


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        (Escalation(after=10), "both after"),
        (Escalation(to="major"), "both after"),
        (Escalation(after=0, to="major"), "after 0 s"),
        (Escalation(remind_every=-1), "remindEvery -1 s"),
    ],
)
def test_a_policy_that_cannot_work_is_named(policy: Escalation, words: str) -> None:
    problem = escalation_problem(policy)
    assert problem is not None and words in problem
    assert escalation_problem(POLICY) is None
