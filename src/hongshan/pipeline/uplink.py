"""The pipeline: the stages every uplink passes, in order, whatever dialect it came in.

A dialect checks a device's message against the thing model where it reads it (a refusal is
answered at once, in the protocol's own terms, and goes no further) and publishes what fits as
a neutral ``Uplink`` on the bus; the bus hands it to the ``Pipeline``. Each stage says which
kinds of uplink it takes (``kinds``) and has one method, ``on_uplink``, which returns what the
device's acknowledgement must wait for, if anything (the history: the commit). The order is
declared once, in ``stages_of_a_town``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Protocol, cast

from hongshan.errors import StoreUnavailable
from hongshan.messages import UPLINKS, Uplink, kinds_of

log = logging.getLogger("hongshan.pipeline")

EARLIEST_MS = 946_684_800_000  # 2000-01-01: a device clock before this was never set
FUTURE_SLACK_MS = 5 * 60_000  # a device clock may run this far ahead of ours


def device_time(claimed: int, now: int) -> int:
    """The device's time for a value when plausible, else ours (``now``): a clock that was
    never set, or one far ahead, would otherwise misplace the value in history and freeze the
    latest value until real time caught up."""
    return claimed if EARLIEST_MS <= claimed <= now + FUTURE_SLACK_MS else now


def every(waits: Iterable[Awaitable[None] | None]) -> Awaitable[None] | None:
    """What an acknowledgement waits for when several things must be done first: done when
    all are, failed with the first failure (None: nothing to wait for)."""
    held = [wait for wait in waits if wait is not None]
    if len(held) <= 1:
        return held[0] if held else None
    return cast(Awaitable[None], asyncio.gather(*held))


def _failed(why: str) -> Awaitable[None]:
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed.set_exception(StoreUnavailable(why))
    return failed


class Stage(Protocol):
    """One job done to every uplink of the ``kinds`` it takes, and only to those (a base
    class stands for the kinds derived from it: ``(Uplink,)`` for all)."""

    @property
    def kinds(self) -> tuple[type[Uplink], ...]: ...

    def on_uplink(self, uplink: Uplink) -> Awaitable[None] | None: ...


class Pipeline:
    """Runs each uplink through the stages that take its kind, in order. A stage's bug is
    logged and the others still run; the uplink's acknowledgement waits for every stage that
    gives something to wait for, and is withheld when a stage failed on an uplink with an
    idempotency key (its device sends it again)."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.stages = tuple(stages)
        # kind -> the stages that take it, in order: one lookup an uplink, no stage asked in vain
        self._stages_of: dict[type[Uplink], tuple[Stage, ...]] = {
            kind: tuple(stage for stage in self.stages if kind in kinds_of(stage.kinds))
            for kind in UPLINKS
        }

    def process(self, uplink: Uplink) -> Awaitable[None] | None:
        waits: list[Awaitable[None]] = []
        for stage in self._stages_of[type(uplink)]:
            try:
                wait = stage.on_uplink(uplink)
            except Exception:  # one stage's bug must not stop the others
                name = type(stage).__name__
                log.exception("stage %s failed on %s", name, type(uplink).__name__)
                wait = _failed(f"the {name} stage failed") if uplink.key else None
            if wait is not None:
                waits.append(wait)
        return every(waits)


def stages_of_a_town(*, twin: Stage, history: Stage, firmware: Stage) -> Pipeline:
    """The one place the order is said: the latest values first (what the API and, later,
    rules read), then the history, whose commit the acknowledgement waits for, then the
    firmware versions devices report (the registry's). Rules come after the history
    (issue 14); the live feed is the bus's listeners, after every stage."""
    return Pipeline((twin, history, firmware))
