"""``Backtester``: a rule run over what the history recorded in a range — when it would have
fired and what it would have done — and two versions of a rule compared on the same range.

The history's replay (``store.history.replay``) gives the uplinks recorded, in time order, a
chunk at a time; a ``Trial`` presents each through the same sources the live engine uses
(the ``$things/…`` streams, Alibaba's rules-engine data), runs the rule compiled as live, its
rate limit on the recorded clock and ``latest()`` answered from the replay's own state (the
values as they were then). Nothing is sent, published or stored. What the history never kept
cannot be replayed (a raw publish on a custom topic, a rule's republish: see the replay).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

import msgspec

from hongshan.messages import Uplink
from hongshan.rules.definition import RuleSpec
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse
from hongshan.services.rules.engine import TagsOf
from hongshan.services.rules.running import Counters
from hongshan.services.rules.sources import RuleSource
from hongshan.services.rules.trial import Heard, Trial, no_tags
from hongshan.store.history.model import HistoryProblem

DAY = 86_400_000
MAX_RANGE = 366 * DAY  # a backtest's longest range: a longer one is refused (400)
MAX_LIMIT = 10_000  # would-be fires listed at most (the counts are all of them)
DEFAULT_LIMIT = 100
MAX_VALUES = 50_000_000  # values and log lines one backtest replays at most; then it stops
MAX_SECONDS = 120.0  # a backtest's longest run: past it it stops (incomplete)
YIELD_EVERY = 2_000  # uplinks heard between turns given back to the event loop


def everyone(product_key: str, device_name: str) -> bool:
    """Every device's history is replayed (the admin token's backtest)."""
    return True


def check_range(start: int, end: int, limit: int) -> None:
    """``HistoryProblem`` (400) for a backtest's range or limit that cannot be (a rule's, a
    scene's or an alarm condition's)."""
    if start >= end:
        raise HistoryProblem(f"from {start} is not before to {end}")
    if end - start > MAX_RANGE:
        raise HistoryProblem(
            f"a backtest covers at most {MAX_RANGE // DAY} days; "
            f"{(end - start) / DAY:.1f} were asked for"
        )
    if not 0 < limit <= MAX_LIMIT:
        raise HistoryProblem(f"limit {limit}: 1 to {MAX_LIMIT}")


class Recorded(Protocol):
    """What a backtest reads of the history (``store.history.ingest.Ingest.replay``)."""

    def replay(
        self,
        start: int,
        end: int,
        *,
        product: str | None = None,
        device: tuple[str, str] | None = None,
    ) -> AsyncIterator[list[Uplink]]: ...


class WouldFire(msgspec.Struct, kw_only=True, rename="camel"):
    """A fire the rule would have made: when (the recorded ms), on which topic, for which
    device (``pk/dn``), what it SELECTed, and what its actions would have done."""

    at: int
    topic: str
    device: str | None
    output: dict[str, Any]
    actions: list[dict[str, Any]]


class Changed(msgspec.Struct, kw_only=True, rename="camel"):
    """A message both versions fired on with different outputs."""

    at: int
    topic: str
    device: str | None
    output: dict[str, Any]  # the rule's
    against: dict[str, Any]  # the other version's


class Tally(msgspec.Struct, kw_only=True, rename="camel"):
    """One rule over the range: messages its FROM matched, would-be fires, messages not run
    by reason (``where``, ``rateLimit``), and the first ``limit`` fires (``listed``)."""

    name: str
    matched: int
    fired: int
    not_run: dict[str, int]
    fires: list[WouldFire]


class Replayed(msgspec.Struct, kw_only=True, rename="camel"):
    """What every backtest (a rule's, a scene's, an alarm condition's) says of the range it
    replayed: ``from``/``to`` (ms; ``to`` where it stopped, if it did), the messages and the
    property values replayed, whether it was complete, the comparison's counts, and notes."""

    start: int = msgspec.field(name="from")
    end: int = msgspec.field(name="to")
    uplinks: int
    values: int
    """Property values replayed (``uplinks``: the messages, posts and log lines)."""
    complete: bool
    """False when it stopped at ``MAX_VALUES`` values or after ``MAX_SECONDS``; ``stoppedAt``
    says where (a backtest from there goes on)."""
    counts: dict[str, int] = {}
    stopped_at: int | None = None
    notes: list[str] = []
    """What the reader should know of the result (a FROM no replayed message matched)."""


class Backtest(Replayed, kw_only=True, rename="camel"):
    """What a backtest found. With ``against``: ``onlyRule`` (fires the rule makes and the
    other version does not), ``onlyAgainst`` (the other way), ``changed`` (both fire, their
    outputs differ), each listed up to the limit and counted whole (``counts``)."""

    rule: Tally
    against: Tally | None = None
    only_rule: list[WouldFire] = []
    only_against: list[WouldFire] = []
    changed: list[Changed] = []


def _named(scope: str | tuple[str, str]) -> str:
    return scope if isinstance(scope, str) else f"device {scope[0]}/{scope[1]}"


def _device(message: RuleInput) -> str | None:
    device = message.device
    return None if device is None else f"{device.product}/{device.device}"


class _Findings:
    """Tallies of one run over the range, filled message by message."""

    def __init__(self, trial: Trial, limit: int) -> None:
        self.trial = trial
        self.limit = limit
        self.fires: list[list[WouldFire]] = [[] for _ in trial.rules]
        self.only: list[list[WouldFire]] = [[], []]
        self.changed: list[Changed] = []
        self.counts = {"onlyRule": 0, "onlyAgainst": 0, "changed": 0, "same": 0}

    def fire(self, index: int, message: RuleInput, output: dict[str, Any]) -> WouldFire:
        return WouldFire(
            at=message.received or 0,
            topic=message.topic,
            device=_device(message),
            output=output,
            actions=self.trial.actions(index, output),
        )

    def take(self, heard: list[Heard]) -> None:
        for index, message, output in heard:
            if output is not None and len(self.fires[index]) < self.limit:
                self.fires[index].append(self.fire(index, message, output))
        if len(self.trial.rules) == 2:
            self._compare(heard)

    def _compare(self, heard: list[Heard]) -> None:
        """Both rules heard the same messages in the same order: pair each message's
        outputs (one rule may listen where the other does not)."""
        by_message: dict[int, list[Any]] = {}
        for index, message, output in heard:
            pair = by_message.setdefault(id(message), [message, None, None])
            pair[1 + index] = output
        for message, mine, theirs in by_message.values():
            if mine is None and theirs is None:
                continue
            if theirs is None or mine is None:
                side = 0 if theirs is None else 1
                key = ("onlyRule", "onlyAgainst")[side]
                self.counts[key] += 1
                if len(self.only[side]) < self.limit:
                    self.only[side].append(self.fire(side, message, mine or theirs))
            elif mine != theirs:
                self.counts["changed"] += 1
                if len(self.changed) < self.limit:
                    self.changed.append(
                        Changed(
                            at=message.received or 0,
                            topic=message.topic,
                            device=_device(message),
                            output=mine,
                            against=theirs,
                        )
                    )
            else:
                self.counts["same"] += 1

    def tally(self, index: int) -> Tally:
        counters: Counters = self.trial.rules[index].counters
        return Tally(
            name=self.trial.specs[index].name,
            matched=counters.matched,
            fired=counters.fired,
            not_run={"where": counters.not_run, "rateLimit": counters.limited},
            fires=self.fires[index],
        )


class Backtester:
    """Runs backtests: replays the history's range for the devices the rule's FROM can hear
    (the product it names, else all) and runs the rule — or the rule and another version —
    on it through the live engine's sources. One backtest at a time (a second waits): each
    is bounded by ``MAX_RANGE``, ``MAX_VALUES`` and ``MAX_SECONDS`` and gives the event loop
    back every ``YIELD_EVERY`` messages.
    Owns no rule and starts no action; never sends, publishes or stores."""

    def __init__(
        self, history: Recorded, sources: Sequence[RuleSource], *, tags: TagsOf = no_tags
    ) -> None:
        self._history = history
        self._sources = tuple(sources)
        self._tags = tags
        self._one_at_a_time = asyncio.Semaphore(1)

    async def run(
        self,
        rule: RuleSpec,
        start: int,
        end: int,
        *,
        against: RuleSpec | None = None,
        limit: int = DEFAULT_LIMIT,
        device: tuple[str, str] | None = None,
        max_values: int = MAX_VALUES,
        max_seconds: float = MAX_SECONDS,
        sees: Callable[[str, str], bool] = everyone,
    ) -> Backtest:
        """The rule (and ``against``) over [start, end) (ms), of the devices ``sees`` says
        (a tenant's); ``RuleSyntaxError`` for a rule that is no rule, ``HistoryProblem``
        (400) for a range or limit that cannot be."""
        check_range(start, end, limit)
        specs = [rule] if against is None else [rule, against]
        trial = Trial(specs, self._sources, tags=self._tags)
        product = self._product(specs)
        findings = _Findings(trial, limit)
        uplinks = values = 0
        stopped_at: int | None = None
        async with self._one_at_a_time:
            deadline = time.monotonic() + max_seconds
            replayed = self._history.replay(start, end, product=product, device=device)
            async for chunk in replayed:
                heard: list[Heard] = []
                for done, uplink in enumerate(chunk, start=1):
                    if sees(uplink.device.product, uplink.device.device):
                        trial.on_uplink(uplink, heard)
                    if len(heard) > 1_000:
                        findings.take(heard)
                        heard = []
                    if done % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # (the live town goes on meanwhile)
                findings.take(heard)
                uplinks += len(chunk)
                values += sum(len(getattr(uplink, "values", ())) for uplink in chunk)
                if values + uplinks >= max_values or time.monotonic() > deadline:
                    stopped_at = chunk[-1].received + 1
                    break
        result = Backtest(
            start=start,
            end=end if stopped_at is None else stopped_at,
            uplinks=uplinks,
            values=values,
            complete=stopped_at is None,
            stopped_at=stopped_at,
            rule=findings.tally(0),
        )
        if not uplinks:
            scope = "the devices of " + (product or "any product") if device is None else device
            result.notes.append(f"nothing was recorded in the range for {_named(scope)}")
        for index, rule_run in enumerate(trial.rules):
            if rule_run.counters.matched == 0 and uplinks:
                result.notes.append(
                    f"no replayed message matched the FROM of {trial.specs[index].name!r} "
                    f"({rule_run.topic_filter}): the history replays the platform's streams "
                    "($things/…) and Alibaba's rule data, never a client's raw publish on a "
                    "topic of its own"
                )
        if against is not None:
            result.against = findings.tally(1)
            result.only_rule, result.only_against = findings.only
            result.changed = findings.changed
            result.counts = findings.counts
        return result

    def _product(self, specs: list[RuleSpec]) -> str | None:
        """The one product every rule's FROM names (only its devices are replayed), or None
        (all devices)."""
        products = set()
        for spec in specs:
            topic_filter = parse(spec.sql).topic_filter
            named = {source.product_in(topic_filter) for source in self._sources} - {None}
            products.add(named.pop() if len(named) == 1 else None)
        return products.pop() if len(products) == 1 else None
