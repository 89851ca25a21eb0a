"""Alink params → checked ``Uplink``s: one device's property post or event, and the messages
that carry several (a history post, a gateway's pack post). Pure functions: given the thing
model, the params and the time, an uplink or a ``Refusal`` with the Alink code to answer.

A message that carries several devices or times is all or nothing: one bad part refuses it
whole, and nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from hongshan.dialects.alink.codes import code_of, words_of
from hongshan.dialects.alink.messages import REQUEST_INVALID
from hongshan.errors import HongshanError
from hongshan.messages import DeviceRef, EventRaised, Problem, PropertyValues, Uplink
from hongshan.pipeline.uplink import device_time
from hongshan.things.tsl import ThingModel

ModelOf = Callable[[str], ThingModel | None]
Speaks = Callable[[str, str], bool]  # may the publishing device post for (pk, dn)?


class Refusal(msgspec.Struct, frozen=True):
    code: int
    message: str


def _invalid(message: str) -> Refusal:
    return Refusal(REQUEST_INVALID, f"request parameter error: {message}")


def _refused(problem: Problem, method: str) -> Refusal:
    """A message the thing model refuses, in Alink's code and words (``method``: the message's,
    which the words name when the model lacks its event)."""
    return Refusal(code_of(problem), words_of(problem, method))


def property_uplink(
    model: ThingModel | None, pk: str, dn: str, params: Any, msg_id: str, now: int, key: bytes = b""
) -> PropertyValues | Refusal:
    times: dict[str, int] = {}
    if model is not None:
        problems, values, times = model.read_property_post(params)
        if problems:
            return _refused(problems[0], "thing.event.property.post")
        if times:
            times = {name: device_time(at, now) for name, at in times.items()}
    elif isinstance(params, dict) and params:
        # no model to say what a value is: {"value", "time"} is read as a stamped value
        values = {}
        for name, raw in params.items():
            if isinstance(raw, dict) and "value" in raw and raw.keys() <= {"value", "time"}:
                values[name] = raw["value"]
                if str(raw.get("time", "")).isdigit():
                    times[name] = device_time(int(raw["time"]), now)
            else:
                values[name] = raw
    else:
        return _invalid("params must be an object")
    return PropertyValues(
        device=DeviceRef(pk, dn),
        received=now,
        key=key,
        values=values,
        device_time=times,
        ts=max(times.values()) if times else now,
        message_id=msg_id,
    )


def event_uplink(
    model: ThingModel | None,
    pk: str,
    dn: str,
    identifier: str,
    params: Any,
    msg_id: str,
    now: int,
    key: bytes = b"",
) -> EventRaised | Refusal:
    if model is not None:
        problems = model.check_event_post(identifier, params)
        if problems:
            return _refused(problems[0], f"thing.event.{identifier}.post")
    if not isinstance(params, dict):
        return _invalid("params must be an object")
    ts = now
    if "value" in params and params.keys() <= {"value", "time"}:
        if str(params.get("time", "")).isdigit():
            ts = device_time(int(params["time"]), now)
        params = params["value"]
    return EventRaised(
        device=DeviceRef(pk, dn),
        received=now,
        key=key,
        event=identifier,
        params=params if isinstance(params, dict) else {"value": params},
        ts=ts,
        message_id=msg_id,
    )


def _identity(part: dict[str, Any], poster: tuple[str, str], speaks: Speaks) -> tuple[str, str]:
    identity = part.get("identity")
    if identity is None:
        return poster
    if not isinstance(identity, dict):
        raise _Refused(_invalid("identity must be an object"))
    pk, dn = identity.get("productKey"), identity.get("deviceName")
    if not isinstance(pk, str) or not isinstance(dn, str):
        raise _Refused(_invalid("identity needs productKey and deviceName"))
    if (pk, dn) != poster and not speaks(pk, dn):
        # the device may post for itself, a gateway for its logged-in sub-devices
        raise _Refused(_invalid(f"not allowed to post for {dn}&{pk}"))
    return pk, dn


class _Refused(HongshanError):
    """One part of a message refused, and the message whole with it (its ``refusal``)."""

    protocol_code: int

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        self.protocol_code = refusal.code


def _device_part(
    model_of: ModelOf,
    device: tuple[str, str],
    properties: Any,
    events: Any,
    msg_id: str,
    now: int,
    key: bytes = b"",
) -> list[Uplink]:
    """One device's properties (``{id: {value, time}}``) and events (``{id: {value, time}}``)."""
    pk, dn = device
    model = model_of(pk)
    uplinks: list[Uplink] = []
    for part, name in ((properties, "properties"), (events, "events")):
        if part is not None and not isinstance(part, dict):
            raise _Refused(_invalid(f"{name} must be an object"))
    if properties:
        values = property_uplink(model, pk, dn, properties, msg_id, now, key)
        if isinstance(values, Refusal):
            raise _Refused(values)
        uplinks.append(values)
    for identifier, value in (events or {}).items():
        event = event_uplink(model, pk, dn, identifier, value, msg_id, now, key)
        if isinstance(event, Refusal):
            raise _Refused(event)
        uplinks.append(event)
    return uplinks


def history_uplinks(
    model_of: ModelOf,
    poster: tuple[str, str],
    params: Any,
    msg_id: str,
    now: int,
    speaks: Speaks,
    key: bytes = b"",
) -> list[Uplink] | Refusal:
    """``thing.event.property.history.post``: ``[{identity?, properties: [{id: {value,
    time}}], events: [{id: {value, time}}]}]`` — values the device kept while offline."""
    if not isinstance(params, list) or not params:
        return _invalid("params must be a non-empty list")
    uplinks: list[Uplink] = []
    try:
        for number, part in enumerate(params, 1):
            if not isinstance(part, dict):
                return _invalid("each entry must be an object")
            device = _identity(part, poster, speaks)
            for name in ("properties", "events"):
                if not isinstance(part.get(name, []), list):
                    return _invalid(f"{name} must be a list")
            before = len(uplinks)
            for properties in part.get("properties", []):
                uplinks += _device_part(model_of, device, properties, None, msg_id, now, key)
            for events in part.get("events", []):
                uplinks += _device_part(model_of, device, None, events, msg_id, now, key)
            if len(uplinks) == before:
                # answered 200 it would say kept, and nothing was (Alibaba: 460 for empty data)
                return _invalid(f"entry {number} carries no properties or events")
    except _Refused as refused:
        return refused.refusal
    return _keyed_apart(uplinks, key)


def _keyed_apart(uplinks: list[Uplink], key: bytes) -> list[Uplink]:
    """Each uplink of one message its own idempotency key: the message's, then the message's
    with its number (a bus that drops a repeated key must not drop the second part)."""
    if not key or len(uplinks) < 2:
        return uplinks
    return [
        uplink if number == 0 else msgspec.structs.replace(uplink, key=key + number.to_bytes(4))
        for number, uplink in enumerate(uplinks)
    ]


def pack_uplinks(
    model_of: ModelOf,
    poster: tuple[str, str],
    params: Any,
    msg_id: str,
    now: int,
    speaks: Speaks,
    key: bytes = b"",
) -> list[Uplink] | Refusal:
    """``thing.event.property.pack.post``: a gateway's own ``properties`` and ``events`` and
    its sub-devices' (``subDevices: [{identity, properties, events}]``) in one message."""
    if not isinstance(params, dict):
        return _invalid("params must be an object")
    subs = params.get("subDevices", [])
    if not isinstance(subs, list):
        return _invalid("subDevices must be a list")
    try:
        uplinks = _device_part(
            model_of, poster, params.get("properties"), params.get("events"), msg_id, now, key
        )
        for sub in subs:
            if not isinstance(sub, dict) or "identity" not in sub:
                return _invalid("each sub-device needs an identity")
            device = _identity(sub, poster, speaks)
            uplinks += _device_part(
                model_of, device, sub.get("properties"), sub.get("events"), msg_id, now, key
            )
    except _Refused as refused:
        return refused.refusal
    if not uplinks:
        return _invalid("nothing to post")
    return _keyed_apart(uplinks, key)
