"""``Trial``: rules run on messages handed to them — replayed from the history, or a rule
file's test cases — as the engine runs them live, doing nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hongshan.messages import DeviceRef, PropertyValues, Uplink
from hongshan.mqtt.topics import topic_matches
from hongshan.rules.compile import compile
from hongshan.rules.definition import RuleSpec
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse
from hongshan.services.rules.described import describe
from hongshan.services.rules.running import Listeners, RunningRule
from hongshan.services.rules.sources import RuleSource

Heard = tuple[int, RuleInput, dict[str, Any] | None]
"""One rule's hearing of one message: the rule's index, the message, and its output when it
fired (None: its WHERE or its rate limit stopped it)."""


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
    device, as the twin would have then. Owns the rules' counters (``rules[i].counters``);
    never starts an action, publishes, stores or sends anything."""

    def __init__(self, specs: Sequence[RuleSpec], sources: Sequence[RuleSource]) -> None:
        self.specs = tuple(specs)
        self.rules = [_running(spec, index) for index, spec in enumerate(self.specs)]
        self._listeners = [Listeners() for _ in self.rules]  # one a rule: they may differ
        for listeners, rule in zip(self._listeners, self.rules, strict=True):
            listeners.add(rule)
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
        message = RuleInput(
            topic=topic,
            payload=payload,
            received=at,
            client_id=client_id,
            device=device,
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

    def actions(self, index: int, output: dict[str, Any]) -> list[dict[str, Any]]:
        """What rule ``index``'s actions would have done with ``output``."""
        return [describe(action, output) for action in self.specs[index].actions]
