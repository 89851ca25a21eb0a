"""What an alarm condition did since it was (re)started, as its trace shows it: its counters
and its last decisions (``ConditionTrace``), kept by ``AlarmConditions`` as it decides. Cheap
on the path of a post: a counter is an int, a decision one append to a bounded deque, and a
post that changes nothing (still holding, still not) leaves no decision."""

from __future__ import annotations

from collections import deque
from typing import Literal

import msgspec

from hongshan.alarms.model import Severity

TRACE_LENGTH = 20  # decisions kept per condition

DecisionKind = Literal["raised", "repeated", "cleared", "waiting", "broken"]


class ConditionCounters(msgspec.Struct, kw_only=True, rename="camel"):
    """Since the condition was (re)started: posts heard that carry one of its properties
    (``heard``); alarms raised, raised again (``repeated``) and cleared (a clear with no open
    alarm is counted in ``clearedNone``); its durations' timers started and given up (a value
    broke the hold) and gone off (``timersDone``)."""

    heard: int = 0
    raised: int = 0
    repeated: int = 0
    cleared: int = 0
    cleared_none: int = 0
    timers_started: int = 0
    timers_cancelled: int = 0
    timers_done: int = 0


class Decision(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One decision for one device at ``at`` (ms): ``raised`` or ``repeated`` (``severity``:
    the create condition's that fired; a repeat never lowers the alarm's), ``cleared``,
    ``waiting`` (a duration's condition holds: it fires at ``until`` if no value breaks it
    first) or ``broken`` (a value that breaks a duration under way: its timer given up).
    ``condition`` names the one a timer is for (``create major``, ``clear``)."""

    at: int
    decision: DecisionKind
    product_key: str
    device_name: str
    condition: str | None = None
    severity: Severity | None = None
    until: int | None = None


class ConditionTrace(msgspec.Struct, kw_only=True, rename="camel"):
    """A condition's counters and its last decisions, newest first; empty for one that is
    not running (disabled)."""

    id: int
    running: bool
    counters: ConditionCounters
    decisions: list[Decision]


class TraceKeeper:
    """A running condition's counters and last ``TRACE_LENGTH`` decisions."""

    __slots__ = ("counters", "decisions")

    def __init__(self) -> None:
        self.counters = ConditionCounters()
        self.decisions: deque[Decision] = deque(maxlen=TRACE_LENGTH)

    def decided(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def trace(self, condition_id: int) -> ConditionTrace:
        return ConditionTrace(
            id=condition_id,
            running=True,
            counters=msgspec.structs.replace(self.counters),
            decisions=list(reversed(self.decisions)),
        )


def not_running(condition_id: int) -> ConditionTrace:
    return ConditionTrace(
        id=condition_id, running=False, counters=ConditionCounters(), decisions=[]
    )
