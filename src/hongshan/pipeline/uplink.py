"""One message from a device in the platform's own terms, whatever dialect it came in.

A dialect turns a publish into an ``Uplink`` once it has been checked against the thing model;
nothing past the dialects sees a packet. Stages have one method (``on_uplink``) and run in the
order the ``Pipeline`` was given them.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

log = logging.getLogger("hongshan.pipeline")


class UplinkKind(enum.StrEnum):
    PROPERTY_POST = "property_post"  # params: {identifier: value}
    EVENT_POST = "event_post"  # identifier: the event; params: its output values
    SERVICE_REPLY = "service_reply"  # identifier: the service; params: its output values


class Uplink(msgspec.Struct, frozen=True, kw_only=True):
    product_key: str
    device_name: str
    kind: UplinkKind
    params: dict[str, Any]
    # ms since the epoch: the device's time when it gave a plausible one, else the arrival
    ts: int
    msg_id: str
    identifier: str = ""
    # per-property device times of a property post (identifier -> ms), when the device sent them
    times: dict[str, int] = {}


EARLIEST_MS = 946_684_800_000  # 2000-01-01: a device clock before this was never set
FUTURE_SLACK_MS = 5 * 60_000  # a device clock may run this far ahead of ours


def device_time(claimed: int, now: int) -> int:
    """The device's time for a value when plausible, else ours (``now``): a clock that was
    never set, or one far ahead, would otherwise misplace the value in history and freeze the
    latest value until real time caught up."""
    return claimed if EARLIEST_MS <= claimed <= now + FUTURE_SLACK_MS else now


class Stage(Protocol):
    def on_uplink(self, uplink: Uplink) -> None: ...


class Pipeline:
    def __init__(self, stages: Iterable[Stage] = ()) -> None:
        self.stages = list(stages)

    def on_uplink(self, uplink: Uplink) -> None:
        for stage in self.stages:
            try:
                stage.on_uplink(uplink)
            except Exception:  # one stage's bug must not stop the others
                log.exception("stage %s failed on %s", type(stage).__name__, uplink.kind)
