"""The pipeline: the stages every uplink passes, in order, whatever dialect it came in.

A dialect checks a device's message against the thing model where it reads it (a refusal is
answered at once, in the protocol's own terms, and goes no further) and publishes what fits as
a neutral ``Uplink`` on the bus; the bus hands it to the ``Pipeline``. Each stage has one method,
``on_uplink``, which returns what the device's acknowledgement must wait for, if anything (the
history: the commit). The order is declared once, in ``stages_of_a_town``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from typing import Protocol

from hongshan.messages import Uplink

log = logging.getLogger("hongshan.pipeline")

EARLIEST_MS = 946_684_800_000  # 2000-01-01: a device clock before this was never set
FUTURE_SLACK_MS = 5 * 60_000  # a device clock may run this far ahead of ours


def device_time(claimed: int, now: int) -> int:
    """The device's time for a value when plausible, else ours (``now``): a clock that was
    never set, or one far ahead, would otherwise misplace the value in history and freeze the
    latest value until real time caught up."""
    return claimed if EARLIEST_MS <= claimed <= now + FUTURE_SLACK_MS else now


class Stage(Protocol):
    def on_uplink(self, uplink: Uplink) -> Awaitable[None] | None: ...


class Pipeline:
    """Runs each uplink through its stages in order. A stage's bug is logged and the others
    still run; what the uplink's acknowledgement waits for is the last stage's that says."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.stages = tuple(stages)

    def process(self, uplink: Uplink) -> Awaitable[None] | None:
        waited: Awaitable[None] | None = None
        for stage in self.stages:
            try:
                wait = stage.on_uplink(uplink)
            except Exception:  # one stage's bug must not stop the others
                log.exception("stage %s failed on %s", type(stage).__name__, type(uplink).__name__)
                continue
            if wait is not None:
                waited = wait
        return waited


def stages_of_a_town(*, twin: Stage, history: Stage) -> Pipeline:
    """The one place the order is said: the latest values first (what the API and, later,
    rules read), then the history, whose commit the acknowledgement waits for. Rules come after
    the history (issue 14); the live feed is the bus's listeners, after every stage."""
    return Pipeline((twin, history))
