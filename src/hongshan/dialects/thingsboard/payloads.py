"""ThingsBoard's JSON payloads, read and written. Pure functions: bytes in, values out, and
the other way; a payload that is not what the API says raises ``MalformedPayload``.

What is read is what ThingsBoard's own transport reads (its ``JsonConverter``): telemetry is an
object of values, ``{"ts": ms, "values": {…}}``, or an array of either; an attribute request
names its keys as comma-separated strings; a ``null`` value is left out (ThingsBoard skips it).
What is written is what ThingsBoard writes: an attribute response has ``client`` and ``shared``
only where they have values, a gateway's has ``value`` for one key and ``values`` for more, an
RPC error is ``{"error": text}``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hongshan.errors import HongshanError
from hongshan.mqtt.reason_codes import ReasonCode

# ThingsBoard's longest device name (its column is 255 characters)
MAX_NAME = 255

Values = dict[str, Any]
Telemetry = tuple[int | None, Values]  # (the device's time in ms, or None: none given; values)


class MalformedPayload(HongshanError):
    """A payload on a ThingsBoard topic that is not what the API says: not JSON, or JSON of
    the wrong shape. Its publisher is told ``protocol_code`` (PUBACK 0x99 Payload format
    invalid, on MQTT 5.0) and nothing of it goes further."""

    protocol_code: int | None = int(ReasonCode.PAYLOAD_FORMAT_INVALID)


_decode = msgspec.json.Decoder().decode
encode = msgspec.json.encode


def _json(payload: bytes) -> Any:
    try:
        return _decode(payload)
    except msgspec.DecodeError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise MalformedPayload(f"{what} must be a JSON object")
    return value


def _present(values: dict[str, Any]) -> Values:
    """The values without the ``null`` ones (ThingsBoard keeps no null)."""
    if None not in values.values():
        return values
    return {key: value for key, value in values.items() if value is not None}


def _millis(value: Any) -> int:
    if type(value) is int and value >= 0:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise MalformedPayload("ts must be UTC milliseconds")


def _entry(item: Any) -> Telemetry:
    values = _object(item, "a telemetry entry")
    if "ts" in values and "values" in values:
        return _millis(values["ts"]), _present(_object(values["values"], "values"))
    return None, _present(values)


def _entries(document: Any) -> list[Telemetry]:
    if type(document) is list:
        return [_entry(item) for item in document]
    return [_entry(document)]


def _name(value: Any, what: str = "device") -> str:
    if type(value) is not str or not value or len(value) > MAX_NAME:
        raise MalformedPayload(f"{what} must be a name of 1 to {MAX_NAME} characters")
    return value


def _keys(value: Any, what: str) -> list[str] | None:
    """ThingsBoard's ``"a,b"`` (or, leniently, ``["a", "b"]``); None when not given."""
    if value is None:
        return None
    if type(value) is str:
        return [key for key in (part.strip() for part in value.split(",")) if key]
    if type(value) is list and all(type(key) is str for key in value):
        return [key for key in value if key]
    raise MalformedPayload(f"{what} must be comma-separated keys")


# -- a device's own (v1/devices/me/…) ---------------------------------------------------------


def telemetry(payload: bytes) -> list[Telemetry]:
    """``{k: v}``, ``{"ts": ms, "values": {k: v}}``, or an array of either."""
    return _entries(_json(payload))


def attributes(payload: bytes) -> Values:
    """Client attributes: ``{k: v}``."""
    return _present(_object(_json(payload), "attributes"))


def attribute_request(payload: bytes) -> tuple[list[str] | None, list[str] | None]:
    """(client keys, shared keys) of ``{"clientKeys": "a,b", "sharedKeys": "c"}``; None for a
    scope not asked for (neither asked: every attribute of both)."""
    request = _object(_json(payload), "an attribute request") if payload.strip() else {}
    return _keys(request.get("clientKeys"), "clientKeys"), _keys(
        request.get("sharedKeys"), "sharedKeys"
    )


def rpc_request(payload: bytes) -> tuple[str, Any]:
    """A client-side RPC: (method, params) of ``{"method": m, "params": p}``."""
    request = _object(_json(payload), "an RPC request")
    return _name(request.get("method"), "method"), request.get("params")


def rpc_response(payload: bytes) -> Any:
    """A device's answer to a server-side RPC: any JSON; text that is not JSON is kept as
    text, as ThingsBoard passes it on as it came."""
    if not payload.strip():
        return None
    try:
        return _decode(payload)
    except msgspec.DecodeError:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise MalformedPayload("an RPC response must be JSON or UTF-8 text") from None


# -- a gateway's (v1/gateway/…) ---------------------------------------------------------------


def gateway_connect(payload: bytes) -> tuple[str, str | None]:
    """(device name, its type or None) of ``{"device": name, "type": t}``."""
    request = _object(_json(payload), "a connect")
    kind = request.get("type")
    if kind is not None and type(kind) is not str:
        raise MalformedPayload("type must be a string")
    return _name(request.get("device")), kind or None


def gateway_disconnect(payload: bytes) -> str:
    return _name(_object(_json(payload), "a disconnect").get("device"))


def gateway_telemetry(payload: bytes) -> dict[str, list[Telemetry]]:
    """``{name: telemetry}``, each as a device's own."""
    document = _object(_json(payload), "gateway telemetry")
    return {_name(name): _entries(entries) for name, entries in document.items()}


def gateway_attributes(payload: bytes) -> dict[str, Values]:
    document = _object(_json(payload), "gateway attributes")
    return {_name(name): _present(_object(v, "attributes")) for name, v in document.items()}


def gateway_attribute_request(payload: bytes) -> tuple[int, str, bool, list[str]]:
    """(request id, device name, client scope?, keys) of ``{"id", "device", "client",
    "key"|"keys"}``."""
    request = _object(_json(payload), "an attribute request")
    request_id = request.get("id")
    if type(request_id) is not int:
        raise MalformedPayload("id must be an integer")
    client = request.get("client", False)
    if type(client) is not bool:
        raise MalformedPayload("client must be true or false")
    key = request.get("key")
    keys = [_name(key, "key")] if key is not None else _keys(request.get("keys"), "keys")
    if not keys:
        raise MalformedPayload("an attribute request names a key or keys")
    return request_id, _name(request.get("device")), client, keys


def gateway_rpc_reply(payload: bytes) -> tuple[str, str, Any]:
    """(device name, request id, answer) of ``{"device", "id", "data"}``."""
    reply = _object(_json(payload), "an RPC reply")
    request_id = reply.get("id")
    if type(request_id) not in (int, str) or request_id == "":
        raise MalformedPayload("id must be the request's id")
    return _name(reply.get("device")), str(request_id), reply.get("data")


# -- what the platform sends ------------------------------------------------------------------


def attribute_response(client: Values, shared: Values) -> bytes:
    answer: dict[str, Values] = {}
    if client:
        answer["client"] = client
    if shared:
        answer["shared"] = shared
    return encode(answer)


def gateway_attribute_response(request_id: int, name: str, values: Values) -> bytes:
    answer: dict[str, Any] = {"id": request_id, "device": name}
    if len(values) == 1:
        answer["value"] = next(iter(values.values()))
    elif values:
        answer["values"] = values
    return encode(answer)


def gateway_attribute_update(name: str, values: Values) -> bytes:
    return encode({"device": name, "data": values})


def rpc_call(method: str, params: Any) -> bytes:
    return encode({"method": method, "params": params})


def gateway_rpc_call(name: str, request_id: int, method: str, params: Any) -> bytes:
    return encode({"device": name, "data": {"id": request_id, "method": method, "params": params}})


def rpc_error(message: str) -> bytes:
    return encode({"error": message})


def session_limits(*, max_payload_size: int, max_inflight: int, gateway: bool) -> bytes:
    """The answer to the SDK's ``getSessionLimits``, in the shape of ThingsBoard's
    ``SessionLimits`` (``GatewaySessionLimits`` for a gateway): the largest packet and the
    in-flight window the broker allows; rate limits empty, which the SDK reads as none."""
    none = {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}
    limits: dict[str, Any] = {
        "maxPayloadSize": max_payload_size,
        "maxInflightMessages": max_inflight,
        "rateLimits": none,
    }
    if gateway:
        limits["gatewayRateLimits"] = none
    return encode(limits)
