"""A rule as the engine runs it (``RunningRule``): compiled, with its actions built, its rate
limit, its counters and the trace of its last runs and non-runs; and how one is built from a
stored rule (``build_rule``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import httpx
import msgspec

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.rules.compile import CompiledRule, compile
from hongshan.rules.definition import (
    ActionSpec,
    AlarmAction,
    ForwardAction,
    InvokeAction,
    RepublishAction,
    SetAction,
    StoredRule,
    WebhookAction,
)
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse
from hongshan.rules.where_index import WhereIndex
from hongshan.services.commands import DeviceCommands
from hongshan.services.fanout import FanOut
from hongshan.services.rules.actions import (
    Action,
    AlarmDesk,
    Forwarder,
    ForwardToRule,
    InvokeService,
    RaiseAlarm,
    Republish,
    Republisher,
    SetProperties,
)
from hongshan.services.rules.webhook import Webhook

TRACE_LENGTH = 20  # runs kept, and non-runs kept, and failures kept, per rule
RECENT = 2 * TRACE_LENGTH  # messages a FROM's listeners keep, to trace their rules' non-runs


@dataclass(frozen=True, kw_only=True)
class ActionNeeds:
    """What actions are built with: the engine's republish and its rules' inputs, the
    devices' commands, the HTTP client of webhooks, the alarms."""

    republish: Republisher
    commands: DeviceCommands
    http: httpx.AsyncClient
    alarms: AlarmDesk
    fan_out: FanOut  # a set or invoke to many devices
    forward: Forwarder  # a rule's input (``RuleEngine.feed``)


def build_action(
    spec: ActionSpec, needs: ActionNeeds, secret: str, tenant: str = DEFAULT_TENANT
) -> Action:
    """The action its settings describe (``secret``: the rule's, a webhook's key)."""
    match spec:
        case RepublishAction():
            return Republish(spec, needs.republish, tenant)
        case SetAction():
            return SetProperties(spec, needs.commands, needs.fan_out, tenant)
        case InvokeAction():
            return InvokeService(spec, needs.commands, needs.fan_out, tenant)
        case WebhookAction():
            return Webhook(spec, needs.http, secret)
        case AlarmAction():
            return RaiseAlarm(spec, needs.alarms)
        case ForwardAction():
            return ForwardToRule(spec, needs.forward, tenant)


def build_rule(stored: StoredRule, needs: ActionNeeds) -> RunningRule:
    """A stored rule made ready to run (its text was checked when it was stored)."""
    return RunningRule(
        stored.id,
        stored.name,
        compile(parse(stored.sql)),
        actions=[
            build_action(spec, needs, stored.secret, stored.tenant) for spec in stored.actions
        ],
        error_action=(
            None
            if stored.error_action is None
            else build_action(stored.error_action, needs, stored.secret, stored.tenant)
        ),
        max_per_second=stored.max_per_second,
        shadow=stored.shadow,
        specs=stored.actions,
        tenant=stored.tenant,
    )


class Counters(msgspec.Struct, kw_only=True, rename="camel"):
    """What a rule did since it was (re)started: messages its FROM matched; fires; non-runs
    by reason (its WHERE, its rate limit, the depth limit); failed actions, the last one's
    error and time; failures of its error action itself."""

    matched: int = 0
    fired: int = 0
    not_run: int = 0
    limited: int = 0
    would_fire: int = 0
    """A shadow rule's fires: what it would have done is in its runs, nothing was done."""
    looped: int = 0
    failed: int = 0
    error_action_failed: int = 0
    last_error: str | None = None
    last_error_at: int | None = None


class Run(msgspec.Struct, kw_only=True):
    """One fire: when (ms), on which topic, what the rule made, how many republishes deep,
    and its actions' errors (filled in as they finish); a shadow rule's (``shadow``) says
    what its actions would have done (``wouldDo``, ``trial.describe``) and did nothing."""

    at: int
    topic: str
    output: dict[str, Any]
    depth: int
    errors: list[str] = []
    shadow: bool = False
    would_do: list[dict[str, Any]] = msgspec.field(default_factory=list, name="wouldDo")


NonRunReason = Literal["where", "rate_limit", "depth_limit"]


class NonRun(msgspec.Struct, kw_only=True):
    """A message the rule listened to and did not run on: ``reason`` ``where`` (its WHERE did
    not hold; ``condition`` is the smallest part that did not, ``why`` says so), ``rate_limit``
    or ``depth_limit`` (a chain of republishes as deep as the engine allows)."""

    at: int
    topic: str
    reason: NonRunReason
    why: str
    condition: str | None = None


class Failure(msgspec.Struct, kw_only=True):
    at: int
    topic: str
    action: str
    error: str


class Trace(msgspec.Struct, kw_only=True, rename="camel"):
    """A rule's counters and its last runs, non-runs and failures, newest first; all empty
    for a rule that is not running (disabled)."""

    id: int
    running: bool
    counters: Counters
    runs: list[Run]
    non_runs: list[NonRun]
    failures: list[Failure]


class RunningRule:
    """One enabled rule in the engine: its compiled text, its actions and error action, a
    token bucket of ``max_per_second`` fires (as many in a burst), its counters, and its last
    runs, non-runs and failures (``TRACE_LENGTH`` of each). It hears messages through the
    ``Listeners`` of its FROM, which decide its WHERE with the other rules' there (an index)
    and keep the last messages they heard: a rule counts the messages its WHERE held on, and
    its plain non-runs (its WHERE false) are those of the listeners' last messages it did not
    hold on — nothing is paid per rule for a message that does not concern it. Which condition
    stopped it is asked only when the trace is read (``why_not`` costs a second evaluation). A
    ``shadow`` rule runs as any other but its fires start no action: the engine records what
    they would have done (``would``). ``now``: the clock its rate limit starts on (a trial's
    is the messages' own). Never stores itself; the engine (or a trial) alone calls it."""

    def __init__(
        self,
        rule_id: int,
        name: str,
        compiled: CompiledRule,
        *,
        actions: list[Action],
        error_action: Action | None,
        max_per_second: float,
        shadow: bool = False,
        specs: Sequence[Any] = (),
        now: float | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        self.id = rule_id
        self.name = name
        self.tenant = tenant  # it hears its tenant's devices (and, for default, clients)
        self.compiled = compiled
        self.topic_filter = compiled.rule.topic_filter
        self.actions = actions
        self.error_action = error_action
        self.shadow = shadow
        self.specs = tuple(specs)  # the actions' settings, to say what a shadow fire would do
        self.rate = max_per_second
        self._tokens = max(1.0, max_per_second)
        self._filled_at = time.monotonic() if now is None else now
        self._counters = Counters()
        self._listeners: Listeners | None = None
        self._joined = 0  # the listeners' count of messages heard when it joined them
        self._alone = 0  # messages handed to it alone (``heard_alone``)
        self._held = 0  # messages its WHERE held on
        self._held_at: deque[int] = deque(maxlen=RECENT)  # ... the listeners' numbers of them
        self._stops = 0  # non-runs kept in ``_stopped``, ever: their order
        self._runs: deque[Run] = deque(maxlen=TRACE_LENGTH)
        self._stopped: deque[_Stopped] = deque(maxlen=TRACE_LENGTH)  # by rate or depth
        self._failures: deque[Failure] = deque(maxlen=TRACE_LENGTH)

    @property
    def counters(self) -> Counters:
        """Its counters now (messages matched and plain non-runs from its listeners' count)."""
        counters = self._counters
        heard = 0 if self._listeners is None else self._listeners.heard - self._joined
        counters.matched = heard + self._alone
        counters.not_run = counters.matched - self._held - counters.looped
        return counters

    def listen(self, listeners: Listeners) -> None:
        """Hear messages from ``listeners`` from now on (counted from their next one)."""
        self._listeners = listeners
        self._joined = listeners.heard

    def admit(self, now: float) -> bool:
        """Whether one more fire fits the rate limit now (``time.monotonic``)."""
        burst = max(1.0, self.rate)
        tokens = min(burst, self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def held(self, number: int, at: int, message: RuleInput, now: float) -> dict[str, Any] | None:
        """Its WHERE held on its listeners' message ``number``: its rate limit (``now``: seconds
        on its clock), then its SELECT — the output when it fires, None when the limit stops
        it (a non-run, kept)."""
        self._held_at.append(number)
        return self._admitted(at, message, now)

    def heard_alone(
        self, message: RuleInput, at: int, now: float, *, too_deep: bool = False
    ) -> dict[str, Any] | None:
        """A message handed to it alone, not through its listeners (another rule's output,
        ``RuleEngine.feed``; a trial's): ``too_deep`` (a chain as deep as the engine allows)
        not run, else its WHERE, then as ``held``."""
        self._alone += 1
        if too_deep:
            self.looped(at, message)
            return None
        where = self.compiled.where
        if where is not None and where(message) is not True:
            self._stop(at, "where", message)
            return None
        return self._admitted(at, message, now)

    def looped(self, at: int, message: RuleInput) -> None:
        """A message a chain of republishes as deep as the engine allows brought: not run."""
        self._counters.looped += 1
        self._stop(at, "depth_limit", message)

    def _admitted(self, at: int, message: RuleInput, now: float) -> dict[str, Any] | None:
        self._held += 1
        if not self.admit(now):
            self._counters.limited += 1
            self._stop(at, "rate_limit", message)
            return None
        return self.compiled.select(message)

    def _stop(self, at: int, reason: NonRunReason, message: RuleInput) -> None:
        # (ordered after the listeners' last message: it came with it, or after it)
        self._stops += 1
        last = 0 if self._listeners is None else self._listeners.heard
        self._stopped.append(_Stopped((last, self._stops), at, reason, message))

    def ran(self, at: int, topic: str, output: dict[str, Any], depth: int) -> Run:
        self._counters.fired += 1
        run = Run(at=at, topic=topic, output=output, depth=depth, errors=[])
        self._runs.append(run)
        return run

    def would(self, at: int, topic: str, output: dict[str, Any], would_do: list[Any]) -> None:
        """A shadow fire: counted apart, traced with what its actions would have done."""
        self._counters.would_fire += 1
        run = Run(at=at, topic=topic, output=output, depth=0, shadow=True, would_do=would_do)
        self._runs.append(run)

    def action_failed(self, at: int, topic: str, action: str, error: str) -> None:
        counters = self._counters
        counters.failed += 1
        counters.last_error = f"{action}: {error}"
        counters.last_error_at = at
        self._failures.append(Failure(at=at, topic=topic, action=action, error=error))

    def trace(self) -> Trace:
        return Trace(
            id=self.id,
            running=True,
            counters=msgspec.structs.replace(self.counters),
            runs=[
                msgspec.structs.replace(run, errors=list(run.errors))
                for run in reversed(self._runs)
            ],
            non_runs=[self._non_run(stopped) for stopped in self._last_stopped()],
            failures=list(reversed(self._failures)),
        )

    def _last_stopped(self) -> list[_Stopped]:
        """Its last non-runs, newest first: those its rate or the depth limit stopped, and the
        listeners' last messages since it joined that its WHERE did not hold on."""
        stopped = list(self._stopped)
        if self._listeners is not None:
            held = set(self._held_at)
            stopped.extend(
                _Stopped((number, 0), at, "where", message)
                for number, at, message in self._listeners.recent
                if number > self._joined and number not in held
            )
        stopped.sort(key=_newest_first)
        return stopped[:TRACE_LENGTH]

    def _non_run(self, stopped: _Stopped) -> NonRun:
        at, reason, topic = stopped.at, stopped.reason, stopped.message.topic
        if reason == "rate_limit":
            why = f"over its rate limit of {self.rate:g} a second"
            return NonRun(at=at, topic=topic, reason=reason, why=why)
        if reason == "depth_limit":
            why = (
                "a chain of republishes or forwards as deep as the engine allows "
                "(a rule triggering itself)"
            )
            return NonRun(at=at, topic=topic, reason=reason, why=why)
        # (asked now: ``latest()`` reads the device's values as they are now)
        found = self.compiled.why_not(stopped.message)
        if found is None:
            return NonRun(at=at, topic=topic, reason=reason, why="its WHERE holds now")
        return NonRun(at=at, topic=topic, reason=reason, why=str(found), condition=found.condition)


class _Stopped(NamedTuple):
    order: tuple[int, int]  # (the listeners' number of the message, or of the last one; the
    #                          rule's count of non-runs kept): which came later
    at: int
    reason: NonRunReason
    message: RuleInput


def _newest_first(stopped: _Stopped) -> tuple[int, int]:
    number, kept = stopped.order
    return (-number, -kept)


class Listeners:
    """The running rules of one FROM filter, and the last ``RECENT`` messages they heard
    (numbered in order: a rule's trace finds its plain non-runs among them). ``hear`` decides
    all their WHEREs at once (``WhereIndex``) and answers the rules that fire with their
    output. Owns the index and the messages kept; never starts an action."""

    def __init__(self, tenant: str = DEFAULT_TENANT) -> None:
        self.tenant = tenant  # (the rules of one filter and one tenant: ``RuleEngine``)
        self.rules: dict[int, RunningRule] = {}
        self._index: WhereIndex[int] = WhereIndex()
        self.heard = 0
        self.recent: deque[tuple[int, int, RuleInput]] = deque(maxlen=RECENT)

    def add(self, rule: RunningRule) -> None:
        self.rules[rule.id] = rule
        self._index.add(rule.id, rule.compiled)
        rule.listen(self)

    def remove(self, rule_id: int) -> RunningRule | None:
        self._index.remove(rule_id)
        return self.rules.pop(rule_id, None)

    def hear(
        self, message: RuleInput, at: int, now: float
    ) -> list[tuple[RunningRule, dict[str, Any]]]:
        """The rules that fire on ``message`` (at ``at`` ms; ``now``: the rate limits' clock),
        each with its output, in the order they were added."""
        self.heard += 1
        number = self.heard
        self.recent.append((number, at, message))
        fired = []
        for rule_id in self._index.holding(message):
            rule = self.rules[rule_id]
            output = rule.held(number, at, message, now)
            if output is not None:
                fired.append((rule, output))
        return fired

    def looped(self, message: RuleInput, at: int) -> None:
        """A message too many republishes deep: heard by every rule, run by none."""
        self.heard += 1
        for rule in self.rules.values():
            rule.looped(at, message)


def not_running(rule_id: int) -> Trace:
    """The trace of a rule that is not running."""
    return Trace(id=rule_id, running=False, counters=Counters(), runs=[], non_runs=[], failures=[])
