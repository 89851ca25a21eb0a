"""``Trial``: rules run on messages handed to them — replayed from the history, or a rule
file's test cases — as the engine runs them live, doing nothing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hongshan.messages import DeviceRef, PropertyValues, Uplink
from hongshan.mqtt.topics import topic_matches
from hongshan.rules.compile import compile
from hongshan.rules.definition import RULE_INPUT, ForwardAction, RuleSpec
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse
from hongshan.services.rules.described import describe
from hongshan.services.rules.engine import MAX_DEPTH, TagsOf
from hongshan.services.rules.running import Listeners, RunningRule
from hongshan.services.rules.sources import RuleSource

Heard = tuple[int, RuleInput, dict[str, Any] | None]
"""One rule's hearing of one message: the rule's index, the message, and its output when it
fired (None: its WHERE or its rate limit stopped it)."""


def no_tags(_product_key: str, _device_name: str) -> Mapping[str, str]:
    """No device has tags (a rule file's cases, run with no registry)."""
    return {}


def _running(spec: RuleSpec, index: int) -> RunningRule:
    return RunningRule(
        index,
        spec.name,
        compile(parse(spec.sql)),
        actions=[],
        error_action=None,
        max_per_second=spec.max_per_second,
        now=-math.inf,  # (its bucket full at the first message, whatever its time)
    )


class Trial:
    """Rules (one, or two to compare) heard on messages handed to it: the bus's uplinks as
    the sources present them (the engine's ``on_uplink``), or messages on a topic (its
    ``on_published``); each compiled as live, its WHERE run, its rate limit kept on the
    messages' own clock. ``latest()`` answers the values the trial has heard so far of the
    device, as the twin would have then; ``attribute()`` the device's tags as they are now
    (``tags``: the history keeps no tags, so a replay reads today's, not those of then). A
    rule action handing an output to one of ``others`` (a rule file's rules) is followed into
    it: that rule runs on the output as the engine would (``feed``), and what it did is said
    under the action's ``then``. Owns the rules' counters (``rules[i].counters``); never
    starts an action, publishes, stores or sends anything."""

    def __init__(
        self,
        specs: Sequence[RuleSpec],
        sources: Sequence[RuleSource],
        *,
        others: Sequence[RuleSpec] = (),
        tags: TagsOf = no_tags,
    ) -> None:
        self.specs = tuple(specs)
        self._tags = tags
        self.rules = [_running(spec, index) for index, spec in enumerate(self.specs)]
        self._listeners = [Listeners() for _ in self.rules]  # one a rule: they may differ
        for listeners, rule in zip(self._listeners, self.rules, strict=True):
            listeners.add(rule)
        self._others = {
            spec.name: (spec, _running(spec, -1 - index)) for index, spec in enumerate(others)
        }
        self._sources = tuple(sources)
        self._filters = [rule.topic_filter for rule in self.rules]
        self._which: dict[str, tuple[int, ...]] = {}  # topic → the rules whose FROM matches
        self._latest: dict[DeviceRef, dict[str, Any]] = {}

    def on_uplink(self, uplink: Uplink, heard: list[Heard]) -> None:
        """An uplink, as each source presents it; what each rule did appended to ``heard``."""
        values = self._latest.get(uplink.device)
        if values is None:
            values = self._latest[uplink.device] = {}
        if type(uplink) is PropertyValues:  # (the twin takes a post before the rules hear it)
            values.update(uplink.values)
        for source in self._sources:
            for topic, make_payload in source.messages(uplink):
                which = self._which.get(topic)
                if which is None:
                    which = self._matching(topic)
                if not which:
                    continue
                message = RuleInput(
                    topic=topic,
                    payload=make_payload(),
                    received=uplink.received,
                    device=uplink.device,
                    tags=self._tags(uplink.device.product, uplink.device.device).get,
                    latest=values.get,
                )
                for index in which:
                    heard.append((index, message, self._run(index, message)))

    def on_published(
        self,
        topic: str,
        payload: Any,
        at: int,
        heard: list[Heard],
        *,
        client_id: str = "",
        device: DeviceRef | None = None,
    ) -> None:
        """A client's publish on ``topic`` (its payload decoded), heard raw, as the engine
        hears one the broker accepted: the device its topic names, where a source knows it;
        none on a topic a source presents itself (a device's Alink post)."""
        which = self._which.get(topic)
        if which is None:
            which = self._matching(topic)
        if not which:
            return
        for source in self._sources:
            if source.translates(topic):
                return  # (as the engine: the source presents its content itself)
            device = device or source.device_in(topic)
        values = {} if device is None else self._latest.setdefault(device, {})
        tags = {} if device is None else self._tags(device.product, device.device)
        message = RuleInput(
            topic=topic,
            payload=payload,
            received=at,
            client_id=client_id,
            device=device,
            tags=tags.get,
            latest=values.get,
        )
        for index in which:
            heard.append((index, message, self._run(index, message)))

    def _matching(self, topic: str) -> tuple[int, ...]:
        which = tuple(i for i, f in enumerate(self._filters) if topic_matches(f, topic))
        self._which[topic] = which
        return which

    def _run(self, index: int, message: RuleInput) -> dict[str, Any] | None:
        at = message.received or 0
        fired = self._listeners[index].hear(message, at, at / 1000)  # (the engine's verdict)
        if not fired:
            return None
        ((rule, output),) = fired
        rule.counters.fired += 1
        return output

    def actions(
        self, index: int, output: dict[str, Any], message: RuleInput | None = None
    ) -> list[dict[str, Any]]:
        """What rule ``index``'s actions would have done with ``output`` (made from
        ``message``: given, a rule action to one of ``others`` is followed into it)."""
        return self._described(self.specs[index], output, message, 0)

    def _described(
        self, spec: RuleSpec, output: dict[str, Any], message: RuleInput | None, depth: int
    ) -> list[dict[str, Any]]:
        done = []
        for action in spec.actions:
            described = describe(action, output)
            followed = isinstance(action, ForwardAction) and action.rule in self._others
            if followed and message is not None:
                name = described["rule"]
                described["then"] = self._follow(name, output, message, depth + 1)
            done.append(described)
        return done

    def _follow(
        self, name: str, output: dict[str, Any], message: RuleInput, depth: int
    ) -> dict[str, Any]:
        """What the rule named ``name`` did with ``output`` handed to its input: its
        ``output`` and ``actions``, or no output and ``why``."""
        spec, rule = self._others[name]
        if depth > MAX_DEPTH:
            return {"output": None, "why": "the depth limit (a rule triggering itself)"}
        fed = RuleInput(
            topic=RULE_INPUT + name,
            payload=output,
            received=message.received,
            device=message.device,
            tags=message.tags,
            latest=message.latest,
        )
        at = message.received or 0
        made = rule.heard_alone(fed, at, at / 1000)
        if made is None:
            stopped = rule.compiled.why_not(fed)
            why = f"over its rate limit of {rule.rate:g} a second" if stopped is None else stopped
            return {"output": None, "why": str(why)}
        rule.counters.fired += 1
        return {"output": made, "actions": self._described(spec, made, fed, depth)}
