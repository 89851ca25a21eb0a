"""Alibaba's rules-engine data: what a rule written for Alibaba Cloud IoT's rules engine reads,
made from the neutral uplinks on the bus (a source of ``services.rules``, which meets it only
through its ``RuleSource`` protocol).

Alibaba's rules engine never gives a rule a thing-model topic's Alink JSON: it gives the
*thing-model data* made of it ("Data formats" of the rules engine). So does this source, on
the topic Alibaba's rules name (``/{pk}/{dn}/thing/event/property/post``) and on the device's
own (``/sys/{pk}/{dn}/…``), and a device's raw publish on a thing-model post topic is not
given to rules as it is (``translates``)::

    /{pk}/{dn}/thing/event/property/post        {"iotId", "requestId", "productKey",
    /sys/{pk}/{dn}/thing/event/property/post     "deviceName", "gmtCreate",
                                                 "items": {"Power": {"value", "time"}}}
    /{pk}/{dn}/thing/event/{identifier}/post    {"identifier", "name", "type", "iotId",
    /sys/{pk}/{dn}/thing/event/{identifier}/post "requestId", "productKey", "deviceName",
                                                 "gmtCreate", "value": {params}, "time"}
    /as/mqtt/status/{pk}/{dn}                   {"status", "iotId", "productKey",
                                                 "deviceName", "time", "utcTime", "lastTime",
                                                 "utcLastTime", "clientIp"}

The values come from the bus, whatever protocol the device speaks: a ThingsBoard lamp's
telemetry reaches a rule written for Alibaba as the same thing-model data (every product's
thing model is Alibaba's TSL), so a rule follows a product across protocols unchanged. Custom
topics (``/{pk}/{dn}/user/…``) are the device's own payload, raw, as on Alibaba.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from hongshan.dialects.alink import messages
from hongshan.messages import DeviceRef, EventRaised, PropertyValues, StatusChanged, Uplink
from hongshan.rules.references import RuleRefused, check_against, references
from hongshan.rules.tree import Rule
from hongshan.things.tsl import ThingModel

Presented = tuple[str, Callable[[], Any]]

PROPERTY_POST_FIELDS = frozenset(
    {
        "iotId",
        "requestId",
        "productKey",
        "deviceName",
        "deviceType",
        "gmtCreate",
        "items",
        "checkFailedData",
    }
)
"""The fields of the thing-model data of a property post, as Alibaba's rules engine gives it."""

_PROPERTY_POST = ["thing", "event", "property", "post"]


def reads_property_posts(rule: Rule) -> bool:
    """Whether the rule's FROM is Alibaba's property-post topic (``/sys/{productKey}/
    {deviceName}/thing/event/property/post``, with wildcards or a shorter prefix), whose
    payload is the thing-model data."""
    return rule.topic_filter.split("/")[-4:] == _PROPERTY_POST


class AlibabaRuleData:
    """The Alink dialect's source of rule messages: Alibaba's rules-engine data of property
    posts, events and status changes (see the module), the device a raw Alink topic names,
    and the check of a rule on those topics against its product's thing model."""

    def __init__(
        self,
        thing_model_of: Callable[[str], ThingModel | None],
        device_known: Callable[[str, str], bool],
    ) -> None:
        self._thing_model_of = thing_model_of
        self._device_known = device_known

    def messages(self, uplink: Uplink) -> Iterable[Presented]:
        pk, dn = uplink.device.product, uplink.device.device
        make: Callable[[], Any]
        if isinstance(uplink, PropertyValues):
            make, tail = functools.partial(_property_data, uplink), "thing/event/property/post"
        elif isinstance(uplink, EventRaised):
            make, tail = (
                functools.partial(self._event_data, uplink),
                f"thing/event/{uplink.event}/post",
            )
        elif isinstance(uplink, StatusChanged):
            return ((f"/as/mqtt/status/{pk}/{dn}", functools.partial(_status_data, uplink)),)
        else:
            return ()
        return ((f"/{pk}/{dn}/{tail}", make), (f"/sys/{pk}/{dn}/{tail}", make))

    def device_in(self, topic: str) -> DeviceRef | None:
        found = _named_device(topic.split("/"))
        if found is None or not self._device_known(*found):
            return None
        return DeviceRef(*found)

    def translates(self, topic: str) -> bool:
        """A device's Alink post of property values or an event: rules read its thing-model
        data instead, made from the uplink it becomes."""
        levels = topic.split("/")
        return (
            len(levels) == 8
            and levels[0] == ""
            and levels[1] == "sys"
            and levels[4:6] == ["thing", "event"]
            and levels[7] == "post"
        )

    def product_in(self, topic_filter: str) -> str | None:
        found = _named_device(topic_filter.split("/"))
        if found is None or found[0] in ("+", "#"):
            return None
        return found[0]

    def check(self, rule: Rule, model: ThingModel) -> None:
        """A rule on the property-post topic reads ``items.<identifier>``, each a property of
        the model, and no field the thing-model data lacks (a property read as
        ``Temperature`` rather than ``items.Temperature.value``)."""
        if not reads_property_posts(rule):
            check_against(rule, model)
            return
        check_against(rule, model, under=("items",))
        known = model.property_map
        for field in sorted(references(rule)):
            if field == "*" or field in PROPERTY_POST_FIELDS:
                continue
            hint = (
                f": a property is read as items.{field}.value"
                if field in known
                else " nor property"
            )
            raise RuleRefused(
                f"the rule reads {field!r}, which a property post has no field{hint}", field
            )

    def _event_data(self, uplink: EventRaised) -> dict[str, Any]:
        model = self._thing_model_of(uplink.device.product)
        event = None if model is None else model.event_map.get(uplink.event)
        data: dict[str, Any] = {"identifier": uplink.event}
        if event is not None:
            data["name"] = event.name
            data["type"] = event.type
        data.update(_head(uplink))
        data["value"] = uplink.params
        data["time"] = uplink.ts
        return data


def _named_device(levels: list[str]) -> tuple[str, str] | None:
    """The (product key, device name) an Alink topic (or filter) names: ``/sys/{pk}/{dn}/…``,
    ``/{pk}/{dn}/thing/…`` or ``/{pk}/{dn}/user/…``, ``/as/mqtt/status/{pk}/{dn}``."""
    if len(levels) < 4 or levels[0] != "":
        return None
    if levels[1] == "sys":
        return levels[2], levels[3]
    if levels[1:4] == ["as", "mqtt", "status"] and len(levels) == 6:
        return levels[4], levels[5]
    if levels[3] in ("thing", "user"):
        return levels[1], levels[2]
    return None


def _head(uplink: PropertyValues | EventRaised) -> dict[str, Any]:
    pk, dn = uplink.device.product, uplink.device.device
    request_id = uplink.message_id
    head: dict[str, Any] = {"iotId": f"{pk}.{dn}"}
    if request_id:
        head["requestId"] = request_id
    head.update(productKey=pk, deviceName=dn, gmtCreate=uplink.received)
    return head


def _property_data(uplink: PropertyValues) -> dict[str, Any]:
    times, ts = uplink.device_time, uplink.ts
    items = {
        identifier: {"value": value, "time": times.get(identifier, ts)}
        for identifier, value in uplink.values.items()
    }
    return {**_head(uplink), "items": items}


def _status_data(uplink: StatusChanged) -> dict[str, Any]:
    pk, dn = uplink.device.product, uplink.device.device
    local, utc = messages.status_stamps(uplink.received // 1000)
    millis = f".{uplink.received % 1000:03d}"
    status = messages.Status(
        status="online" if uplink.online else "offline",
        iot_id=f"{pk}.{dn}",
        product_key=pk,
        device_name=dn,
        time=local + millis,
        utc_time=utc + millis + "Z",
        last_time=local + millis,
        utc_last_time=utc + millis + "Z",
        client_ip=uplink.address.rsplit(":", 1)[0] if uplink.address else None,
    )
    data: dict[str, Any] = msgspec.to_builtins(status)
    return data
