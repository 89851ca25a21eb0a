"""A tracked command's lifecycle, as data: its states, the one table of the moves between
them, the record kept of each command, and a batch of them (one command to many devices).

::

    queued ──▶ sent ──▶ replied
      │  ▲      │  └──▶ timed_out ──▶ replied     (a late reply still completes the record)
      │  └──────┤
      │         └──▶ failed                       (not sent after all: the device went, the
      ├──▶ failed                                  platform stopped, its dialect refused it)
      ├──▶ expired      (its time to live ran out while its device was offline)
      └──▶ cancelled    (by a person, while it was queued)

``sent → queued``: a command with a time to live whose device went between the platform's
look and the dialect's send waits again. ``replied``, ``failed``, ``expired`` and
``cancelled`` are final. Imports nothing of the platform.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class CommandState(enum.StrEnum):
    QUEUED = "queued"  # kept, not sent: its device is offline (or its turn has not come)
    SENT = "sent"  # given to the device's dialect, which sent it; no answer yet
    REPLIED = "replied"  # the device answered (its code says how it went)
    TIMED_OUT = "timed_out"  # the device did not answer within the command's wait
    FAILED = "failed"  # it could not be sent (offline without a time to live, refused, …)
    EXPIRED = "expired"  # its time to live ran out before its device came online
    CANCELLED = "cancelled"  # cancelled while queued


S = CommandState
TRANSITIONS: dict[CommandState, frozenset[CommandState]] = {
    S.QUEUED: frozenset({S.SENT, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.SENT: frozenset({S.REPLIED, S.TIMED_OUT, S.FAILED, S.QUEUED}),
    S.TIMED_OUT: frozenset({S.REPLIED}),
    S.REPLIED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}
FINAL = frozenset(state for state, nexts in TRANSITIONS.items() if not nexts)
AWAITING_REPLY = frozenset({S.SENT, S.TIMED_OUT})  # a reply heard now completes the record


def may_move(old: CommandState, new: CommandState) -> bool:
    """Whether the table allows a command in ``old`` to move to ``new``."""
    return new in TRANSITIONS[old]


class CommandKind(enum.StrEnum):
    SET = "set"  # property values
    CALL = "call"  # a service of the thing model
    RAW = "raw"  # raw bytes, answered with raw bytes (Alibaba's RRPC)


class CommandRecord(msgspec.Struct, kw_only=True, rename="camel"):
    """One command to one device as the platform keeps it: what was asked, by whom
    (``origin``: ``api``, ``cli``, ``rule:<id>``, ``scene:<id>``), its state and the time of
    each step, and how it ended. ``callId`` is the protocol's id of the request once it went
    (what the device's reply names); ``wait`` the seconds its dialect waits for the answer;
    ``ttl`` how long it may wait queued for an offline device (None: it fails at once).
    Times are ms since the epoch."""

    id: int
    product_key: str
    device_name: str
    kind: CommandKind
    service: str  # "set" for a property set, the raw topic (or "") for a raw call
    params: Any
    origin: str
    state: CommandState
    batch: int | None = None
    call_id: str = ""
    wait: float | None = None
    ttl: float | None = None
    created_at: int = 0
    sent_at: int | None = None
    finished_at: int | None = None
    expires_at: int | None = None
    outcome: str = ""  # the dialect's (CommandResult.outcome), or the lifecycle's word
    code: int | None = None
    output: Any = None
    message: str = ""


class Target(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename="camel",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    """The devices a command goes to: one device (``productKey`` and ``deviceName``), a
    ``group``, every device of a product (``productKey`` alone), a ``tag`` (``key:value``,
    within a product when ``productKey`` is given too) or a ``district`` (a device's
    location's). Exactly one way of choosing."""

    product_key: str | None = None
    device_name: str | None = None
    group: str | None = None
    tag: str | None = None
    district: str | None = None

    def problem(self) -> str | None:
        """What is wrong with it, in words, or None."""
        named = [
            name
            for name, value in (
                ("deviceName", self.device_name),
                ("group", self.group),
                ("tag", self.tag),
                ("district", self.district),
            )
            if value is not None
        ]
        if len(named) > 1:
            return (
                f"target: give one of deviceName, group, tag, district (not {' and '.join(named)})"
            )
        if not named and self.product_key is None:
            return "target: give productKey (and deviceName), group, tag or district"
        if self.device_name is not None and self.product_key is None:
            return "target: deviceName needs its productKey"
        if (self.group is not None or self.district is not None) and self.product_key is not None:
            return "target: a group or a district is chosen by its name alone (no productKey)"
        if self.tag is not None and ":" not in self.tag:
            return f"target: tag {self.tag!r}: write it key:value"
        for name, value in (("group", self.group), ("district", self.district)):
            if value is not None and not value.strip():
                return f"target: {name} is empty"
        return None

    @property
    def one_device(self) -> bool:
        return self.device_name is not None

    def describe(self) -> str:
        if self.device_name is not None:
            return f"device {self.product_key}/{self.device_name}"
        if self.group is not None:
            return f"group {self.group}"
        if self.district is not None:
            return f"district {self.district}"
        if self.tag is not None:
            within = f" of product {self.product_key}" if self.product_key else ""
            return f"tag {self.tag}{within}"
        return f"product {self.product_key}"


class CommandBatch(msgspec.Struct, kw_only=True, rename="camel"):
    """One command to many devices: one record per device (``batch`` its id), sent paced.
    ``counts``: how many of its records are in each state now."""

    id: int
    target: Target
    kind: CommandKind
    service: str
    params: Any
    origin: str
    wait: float | None = None
    ttl: float | None = None
    created_at: int = 0
    total: int = 0
    counts: dict[str, int] = {}
