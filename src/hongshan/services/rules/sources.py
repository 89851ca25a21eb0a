"""What a rule's FROM can name besides the broker's topics: the bus's uplinks, each presented
as a message on a topic of a *source* — the platform's own ``$things/…`` streams
(``PlatformStreams``, here), and a dialect's view for rules written for its cloud (Alink's:
Alibaba's rules-engine data, ``dialects/alink/rule_data.py``).

A source answers four questions, and knows nothing of the engine:

- ``messages(uplink)``: the (topic, payload maker) pairs it presents an uplink as; the payload
  is made only when a rule listens on the topic;
- ``device_in(topic)``: the device a client's publish on ``topic`` speaks for, where its
  topics name one (``deviceName()``, ``productKey()``, ``latest()`` of a raw message);
- ``translates(topic)``: whether a client's publish on ``topic`` is not given to rules as it
  is, because the source presents its content itself (Alibaba's thing-model topics);
- ``product_in(topic_filter)`` and ``check(rule, model)``: the product a FROM on its topics
  names, and the refusal of a rule that reads what that product's thing model lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from hongshan.messages import (
    CommandGivenUp,
    CommandSent,
    DeviceRef,
    EventRaised,
    FirmwareReported,
    PropertyValues,
    Registered,
    ServiceReplied,
    StatusChanged,
    Uplink,
)
from hongshan.rules.references import RuleRefused, fields_under
from hongshan.rules.tree import Rule
from hongshan.things.tsl import ThingModel

Presented = tuple[str, Callable[[], Any]]
"""A topic, and how to make the payload a rule reads there (only if one listens)."""


class RuleSource(Protocol):
    def messages(self, uplink: Uplink) -> Iterable[Presented]: ...

    def device_in(self, topic: str) -> DeviceRef | None: ...

    def translates(self, topic: str) -> bool: ...

    def product_in(self, topic_filter: str) -> str | None: ...

    def check(self, rule: Rule, model: ThingModel) -> None: ...


THINGS = "$things"


class PlatformStreams:
    """The platform's own streams as topics, whatever protocol a device speaks (a ThingsBoard
    lamp and an Alink lamp are one rule). ``{pk}``/``{dn}`` are the device's product key and
    name; every payload has ``productKey``, ``deviceName`` and ``ts`` (ms since the epoch)::

        $things/{pk}/{dn}/properties      values: {identifier: value}, times: {identifier: ms}
        $things/{pk}/{dn}/events/{event}  event, params
        $things/{pk}/{dn}/status          online, reason, address, gateway ("pk/dn" or null)
        $things/{pk}/{dn}/commands        callId, service, params, state "sent"; or a
                                          command that ended unanswered: state
                                          "timed_out", "failed", "expired", "cancelled"
                                          (a tracked command's, with its commandId) or
                                          "given_up" (the platform stopped), and why
        $things/{pk}/{dn}/replies         callId, service, code, output, message
        $things/{pk}/{dn}/firmware        versions: {module: version}
        $things/{pk}/{dn}/registered      how
        $things/{pk}/{dn}/alarms          change (raised, repeated, escalated, reminder,
                                          acknowledged, cleared, assigned, noted), by
                                          (who: "ana", "rule:3", "event:LampFault",
                                          "escalation"), previousSeverity, previousStatus,
                                          and the alarm's fields (id, type, severity,
                                          status, originator, details, firstRaisedAt,
                                          lastRaisedAt, repeats, …)

    As MQTT says of ``$`` topics, a FROM of ``#`` or ``+/…`` does not match them: a rule
    names ``$things`` (``$things/+/+/properties``). Only the platform presents them; a client
    publishing on ``$things/…`` is heard like any other topic's, raw. The ``alarms`` stream is
    no uplink: the alarms' service hands it to the engine itself (``RuleEngine.on_platform``),
    for each change of an alarm."""

    def messages(self, uplink: Uplink) -> Iterable[Presented]:
        device = uplink.device
        base = f"{THINGS}/{device.product}/{device.device}/"
        if isinstance(uplink, EventRaised):
            return ((base + "events/" + uplink.event, lambda: _payload(uplink)),)
        stream = _STREAMS.get(type(uplink))
        if stream is None:
            return ()
        return ((base + stream, lambda: _payload(uplink)),)

    def device_in(self, topic: str) -> DeviceRef | None:
        return None  # (only the platform publishes its streams; a client's are its own)

    def translates(self, topic: str) -> bool:
        return False

    def product_in(self, topic_filter: str) -> str | None:
        levels = topic_filter.split("/")
        if len(levels) < 2 or levels[0] != THINGS or levels[1] in ("+", "#"):
            return None
        return levels[1]

    def check(self, rule: Rule, model: ThingModel) -> None:
        """On ``…/properties``, a property is read as ``values.<identifier>`` (or its time as
        ``times.<identifier>``): one the model lacks is refused."""
        if not rule.topic_filter.endswith("/properties"):
            return
        known = model.property_map
        for field in ("values", "times"):
            for identifier in sorted(fields_under(rule, field)):
                if identifier not in known:
                    raise RuleRefused(
                        f"the rule reads property {identifier!r} ({field}.{identifier}), which "
                        "the product's thing model does not have",
                        identifier,
                    )


_STREAMS: dict[type[Uplink], str] = {
    PropertyValues: "properties",
    StatusChanged: "status",
    CommandSent: "commands",
    CommandGivenUp: "commands",
    ServiceReplied: "replies",
    FirmwareReported: "firmware",
    Registered: "registered",
}


def _payload(uplink: Uplink) -> dict[str, Any]:
    """The neutral JSON of an uplink on its ``$things`` topic."""
    pk, dn = uplink.device.product, uplink.device.device
    head: dict[str, Any] = {"productKey": pk, "deviceName": dn, "ts": uplink.received}
    match uplink:
        case PropertyValues(values=values, ts=ts, device_time=times):
            times = {identifier: times.get(identifier, ts) for identifier in values}
            return {**head, "ts": ts, "values": values, "times": times}
        case EventRaised(event=event, params=params, ts=ts):
            return {**head, "ts": ts, "event": event, "params": params}
        case StatusChanged(online=online, reason=reason, address=address, gateway=gateway):
            carrier = None if gateway is None else f"{gateway.product}/{gateway.device}"
            return {**head, "online": online, "reason": reason, "address": address,
                    "gateway": carrier}  # fmt: skip
        case CommandSent(call_id=call_id, service=service, params=params):
            return {**head, "callId": call_id, "service": service, "params": params,
                    "state": "sent"}  # fmt: skip
        case CommandGivenUp(call_id=call_id, service=service, why=why, state=state):
            given_up = {**head, "callId": call_id, "service": service, "state": state, "why": why}
            if uplink.command_id:
                given_up["commandId"] = uplink.command_id
            return given_up
        case ServiceReplied(call_id=call_id, service=service, code=code, output=output):
            return {**head, "callId": call_id, "service": service, "code": code,
                    "output": output, "message": uplink.message}  # fmt: skip
        case FirmwareReported(versions=versions):
            return {**head, "versions": versions}
        case Registered(how=how):
            return {**head, "how": how}
    return head
