"""``RuleEngine``: the enabled rules, run on every message whose topic their FROM matches."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx
import msgspec

from hongshan.errors import HongshanError
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.messages import DeviceRef, Uplink
from hongshan.mqtt.trie import SubscriptionTrie
from hongshan.rules.definition import RULE_INPUT
from hongshan.rules.message import RuleInput
from hongshan.services.rules.actions import Action, ActionFailed, Fired, Pending
from hongshan.services.rules.described import describe
from hongshan.services.rules.running import Listeners, Run, RunningRule
from hongshan.services.rules.sources import RuleSource
from hongshan.twin.properties import PropertyValue

log = logging.getLogger("hongshan.rules")

MAX_DEPTH = 8
"""Republishes (or forwards to a rule's input) deep a message may be and still run rules: a
rule whose output triggers itself (or two that trigger each other) stops there."""
MAX_IN_FLIGHT = 10_000
"""Fires whose actions (commands, webhooks) may be under way at once; past it an action fails
at once rather than pile up in memory behind a slow webhook."""

Publish = Callable[[str, bytes, int], None]  # (topic, payload, qos): the broker's, as the server
TagsOf = Callable[[str, str], Mapping[str, str]]  # a device's tags, in memory (``TagDirectory``)


class Published(Protocol):
    """A client's publish as the broker hears it (``broker.message.Message``)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...

    @property
    def sender(self) -> str: ...


_json = msgspec.json.Decoder()
_encode = msgspec.json.encode


def _decoded(payload: bytes) -> Any:
    """A payload as a rule reads it: its JSON, else its text, else nothing (None)."""
    try:
        return _json.decode(payload)
    except msgspec.DecodeError:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return None


def _ms() -> int:
    return int(time.time() * 1000)


def _every_product_default(product_key: str) -> str:
    return DEFAULT_TENANT


class RuleEngine:
    """Runs the enabled rules on the messages they listen to: clients' publishes (heard from
    the broker, ``on_published``), the bus's uplinks as each source presents them
    (``on_uplink``: ``$things/…``, Alibaba's rules-engine data), the platform's own messages
    that are no uplink (``on_platform``: an alarm's changes), its own rules' republishes, and
    a rule's output handed to another rule's input (``feed``: that rule alone).

    Rules are indexed by their FROM filter in a subscription trie, so a message costs one
    lookup (remembered per topic) whatever the number of rules; with no rule at all, one
    ``if``. Rules run per tenant: the rules of one filter and one tenant are its
    ``Listeners``, and a message is heard only by those of its device's tenant (a dict read,
    ``tenant_of``); a client's publish that is no device's by the default tenant's; a
    republish by its rule's tenant's (and one onto another tenant's device topic fails).
    Those of one ``Listeners`` have their WHEREs decided together (``WhereIndex``: a field
    read once, thresholds found by bisection), so a rule a message does not concern costs
    next to nothing. A message that speaks for a device carries its
    latest values and its tags as they are now (``attribute()``: one dict lookup, in memory,
    made only when a rule is listening). A rule whose WHERE holds and whose rate allows it
    fires: each of its actions is started, those that take time (commands, webhooks) are
    awaited together in one task, and a failure is counted, traced and handed to the rule's
    error action — never stopping the others. Owns that index, the actions' tasks and the
    webhooks' HTTP client; never stores or checks a rule (``RuleBook``) and never speaks a
    device's protocol (commands go by ``DeviceCommands``, republishes by the broker as the
    server's own)."""

    def __init__(
        self,
        *,
        sources: Sequence[RuleSource],
        publish: Publish,
        latest: Callable[[str, str], Mapping[str, PropertyValue]],
        tags: TagsOf,
        tenant_of: Callable[[str], str | None] = _every_product_default,
    ) -> None:
        """``tenant_of``: a product's tenant (``Directory.tenant_of``)."""
        self._tenant_of = tenant_of
        self._sources = tuple(sources)
        self._publish = publish
        self._latest = latest
        self._tags = tags
        self._index: SubscriptionTrie[str, Listeners] = SubscriptionTrie()
        self._listeners: dict[str, Listeners] = {}  # by tenant and FROM filter: ``_key``
        self._rules: dict[int, RunningRule] = {}
        # (a rule's input is named: ``feed``; a name is unique within its tenant only)
        self._named: dict[tuple[str, str], RunningRule] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.http = httpx.AsyncClient(follow_redirects=False)
        # what the rules dropped (deleted, or replaced by a change) had counted: with the
        # running rules' counts, totals that never go back (``totals``)
        self._retired: collections.Counter[str] = collections.Counter()

    # -- the rules -------------------------------------------------------------------------

    def put(self, rule: RunningRule) -> None:
        """Run ``rule`` (in place of one with its id: its counters start again)."""
        self.drop(rule.id)
        self._rules[rule.id] = rule
        self._named[rule.tenant, rule.name] = rule
        key = _key(rule)
        listeners = self._listeners.get(key)
        if listeners is None:
            listeners = self._listeners[key] = Listeners(rule.tenant)
            self._index.subscribe(rule.topic_filter, key, listeners)
        listeners.add(rule)

    def drop(self, rule_id: int) -> None:
        """Stop running the rule (its trace goes with it)."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return
        self._retired.update(_totalled(rule))  # (read while it still hears its listeners)
        if self._named.get((rule.tenant, rule.name)) is rule:
            del self._named[rule.tenant, rule.name]
        key = _key(rule)
        listeners = self._listeners[key]
        listeners.remove(rule_id)
        if not listeners.rules:
            del self._listeners[key]
            self._index.unsubscribe(rule.topic_filter, key)

    def running(self, rule_id: int) -> RunningRule | None:
        return self._rules.get(rule_id)

    def running_rules(self) -> list[RunningRule]:
        """Every rule it runs now (their counters are what the metrics read)."""
        return list(self._rules.values())

    def totals(self) -> collections.Counter[str]:
        """``TOTALLED`` counters summed over every rule it has run since it started."""
        totals = collections.Counter(self._retired)
        for rule in self._rules.values():
            totals.update(_totalled(rule))
        return totals

    async def stop(self) -> None:
        """Give up the actions under way and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()

    # -- what it hears ---------------------------------------------------------------------

    def on_published(self, message: Published) -> None:
        """A client's publish the broker accepted."""
        if not self._rules:
            return
        topic = message.topic
        matches = self._index.matches(topic)
        if not matches:
            return
        device = None
        for source in self._sources:
            if source.translates(topic):
                return  # (the source presents it itself, from the bus)
            device = device or source.device_in(topic)
        heard = RuleInput(
            topic=topic,
            payload=_decoded(message.payload),
            received=_ms(),
            client_id=message.sender,
            device=device,
            tags=self._tags_of(device),
            latest=self._latest_of(device),
        )
        self._run(matches, heard, 0)

    def on_uplink(self, uplink: Uplink) -> None:
        """An uplink on the bus, as each source presents it."""
        if not self._rules:
            return
        latest: Callable[[str], Any] | None = None
        tags: Callable[[str], str | None] = _no_tag
        for source in self._sources:
            for topic, make_payload in source.messages(uplink):
                matches = self._index.matches(topic)
                if not matches:
                    continue
                if latest is None:
                    latest = self._latest_of(uplink.device)
                    tags = self._tags_of(uplink.device)
                heard = RuleInput(
                    topic=topic,
                    payload=make_payload(),
                    received=uplink.received,
                    device=uplink.device,
                    tags=tags,
                    latest=latest,
                )
                self._run(matches, heard, 0)

    def on_platform(
        self, topic: str, payload: dict[str, Any], device: DeviceRef | None, depth: int = 0
    ) -> None:
        """A message of the platform's own that is no uplink (an alarm's change on
        ``$things/{pk}/{dn}/alarms``), run through the rules listening on ``topic`` as
        speaking for ``device``; ``depth``: how many rule actions led to it, so that a rule
        whose alarm action its own alarm's stream triggers stops at ``MAX_DEPTH``."""
        if not self._rules:
            return
        matches = self._index.matches(topic)
        if matches:
            heard = RuleInput(
                topic=topic,
                payload=payload,
                received=_ms(),
                device=device,
                tags=self._tags_of(device),
                latest=self._latest_of(device),
            )
            self._run(matches, heard, depth)

    def republish(
        self,
        topic: str,
        output: dict[str, Any],
        qos: int,
        depth: int,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """A rule's output published on ``topic`` (subscribers get it), and run through the
        rules of ``tenant`` (the republishing rule's) listening there, ``depth`` republishes
        deep. ``ActionFailed`` for a topic of another tenant's device (a rule of one town
        never commands another's lamps by their topics)."""
        for source in self._sources:
            device = source.device_in(topic)
            owner = None if device is None else self._tenant_of(device.product)
            if owner is not None and owner != tenant:
                raise ActionFailed(f"republish to {topic!r}: not a topic of this tenant's")
        self._publish(topic, _encode(output), qos)
        if not self._rules:
            return
        matches = self._index.matches(topic)
        if matches:
            heard = RuleInput(topic=topic, payload=output, received=_ms())
            self._run(matches, heard, depth, tenant)

    def feed(
        self, name: str, output: dict[str, Any], fired: Fired, tenant: str = DEFAULT_TENANT
    ) -> None:
        """A rule's ``output`` handed to the input of the rule named ``name``: that rule alone
        runs on it (its FROM is not matched), as on a message on ``$rules/<name>`` whose
        payload is the output, speaking for the device ``fired``'s message spoke for, one step
        deeper than it; nothing is published. ``ActionFailed`` when no such rule is running
        (disabled, deleted or renamed): the forwarding rule's failure, not the target's."""
        rule = self._named.get((tenant, name))  # (another tenant's is none of its own)
        if rule is None:
            raise ActionFailed(f"rule {name!r} is not running (disabled, deleted or renamed)")
        depth, at = fired.depth + 1, _ms()
        message = RuleInput(
            topic=RULE_INPUT + name,
            payload=output,
            received=at,
            device=fired.device,
            tags=self._tags_of(fired.device),
            latest=self._latest_of(fired.device),
        )
        made = rule.heard_alone(message, at, time.monotonic(), too_deep=depth > MAX_DEPTH)
        if made is not None:
            self._fired(rule, message, made, at, depth)

    def _tags_of(self, device: DeviceRef | None) -> Callable[[str], str | None]:
        if device is None:
            return _no_tag
        return self._tags(device.product, device.device).get

    def _latest_of(self, device: DeviceRef | None) -> Callable[[str], Any]:
        if device is None:
            return _nothing
        values = self._latest(device.product, device.device)

        def latest(identifier: str) -> Any:
            found = values.get(identifier)
            return None if found is None else found.value

        return latest

    # -- running ---------------------------------------------------------------------------

    def _run(
        self,
        matches: list[dict[str, Listeners]],
        message: RuleInput,
        depth: int,
        tenant: str | None = None,
    ) -> None:
        """Run the listeners of the message's tenant: ``tenant``, else its device's, else
        (a client's publish) the default tenant's."""
        now = time.monotonic()
        at = message.received or _ms()
        device = message.device
        if tenant is None:
            tenant = DEFAULT_TENANT if device is None else self._tenant_of(device.product)
        for found in matches:
            for listeners in found.values():
                if listeners.tenant != tenant:
                    continue  # (another tenant's rules never hear it)
                if depth > MAX_DEPTH:
                    listeners.looped(message, at)
                    continue
                try:
                    fired = listeners.hear(message, at, now)
                except Exception:  # (a rule is total by design: this is a fault of ours)
                    log.exception("rules on %r failed on %r", listeners.rules, message.topic)
                    continue
                for rule, output in fired:  # (an action may put or drop rules)
                    self._fired(rule, message, output, at, depth)

    def _fired(
        self, rule: RunningRule, message: RuleInput, output: dict[str, Any], at: int, depth: int
    ) -> None:
        if rule.shadow:
            would_do = [describe(spec, output) for spec in rule.specs]
            rule.would(at, message.topic, output, would_do)
            return
        run = rule.ran(at, message.topic, output, depth)
        fired = Fired(
            rule.id, rule.name, message.topic, message.payload, output, depth, message.device
        )
        self._fire(rule, fired, run)

    def _fire(self, rule: RunningRule, fired: Fired, run: Run) -> None:
        waiting: list[tuple[Action, Pending]] = []
        for action in rule.actions:
            try:
                pending = action.start(fired.output, fired)
            except Exception as exc:  # one action's failure never stops the others
                self._failed(rule, action, exc, fired, run)
                continue
            if pending is not None:
                waiting.append((action, pending))
        if waiting:
            self._await(rule, waiting, fired, run)

    def _await(
        self, rule: RunningRule, waiting: list[tuple[Action, Pending]], fired: Fired, run: Run
    ) -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            for action, pending in waiting:
                pending.close()
                busy = ActionFailed(f"{MAX_IN_FLIGHT} fires' actions under way already")
                self._failed(rule, action, busy, fired, run)
            return
        task = asyncio.ensure_future(self._finish(rule, waiting, fired, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(
        self, rule: RunningRule, waiting: list[tuple[Action, Pending]], fired: Fired, run: Run
    ) -> None:
        results = await asyncio.gather(*(pending for _, pending in waiting), return_exceptions=True)
        for (action, _), result in zip(waiting, results, strict=True):
            if isinstance(result, Exception):
                self._failed(rule, action, result, fired, run)
            elif isinstance(result, BaseException):  # (cancelled: the engine is stopping)
                raise result

    def _failed(
        self, rule: RunningRule, action: Action, exc: Exception, fired: Fired, run: Run
    ) -> None:
        """Count and trace a failed action, and hand it to the rule's error action."""
        if isinstance(exc, HongshanError):
            error = str(exc)
        else:  # a fault of ours, or a library's: its traceback in the log
            error = f"{type(exc).__name__}: {exc}"
            log.error("rule %s (%s): %s failed", rule.id, rule.name, action.kind, exc_info=exc)
        at = _ms()
        run.errors.append(f"{action.kind}: {error}")
        rule.action_failed(at, fired.topic, action.kind, error)
        handler = rule.error_action
        if handler is None:
            return
        report = {
            "ruleId": rule.id,
            "ruleName": rule.name,
            "action": action.kind,
            "error": error,
            "at": at,
            "topic": fired.topic,
            "payload": fired.payload,
            "output": fired.output,
        }
        failed = Fired(
            rule.id, rule.name, fired.topic, fired.payload, report, fired.depth, fired.device
        )
        try:
            pending = handler.start(report, failed)
        except Exception as handler_exc:
            self._error_action_failed(rule, handler_exc)
            return
        if pending is not None:
            task = asyncio.ensure_future(self._report(rule, pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _report(self, rule: RunningRule, pending: Pending) -> None:
        try:
            await pending
        except Exception as exc:
            self._error_action_failed(rule, exc)

    def _error_action_failed(self, rule: RunningRule, exc: Exception) -> None:
        """An error action's own failure: counted and logged, never reported again."""
        rule.counters.error_action_failed += 1
        log.warning("rule %s (%s): its error action failed: %s", rule.id, rule.name, exc)


def _key(rule: RunningRule) -> str:
    """Its listeners' key: its tenant and its FROM filter (a tenant id has no ``\n``)."""
    return f"{rule.tenant}\n{rule.topic_filter}"


def _nothing(_identifier: str) -> Any:
    return None


def _no_tag(_key: str) -> str | None:
    return None


TOTALLED = ("matched", "fired", "limited", "failed")
"""The rules' counters the engine also keeps totals of, whatever rules come and go."""


def _totalled(rule: RunningRule) -> dict[str, int]:
    counters = rule.counters
    return {name: getattr(counters, name) for name in TOTALLED}
