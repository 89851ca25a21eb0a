"""Alink's JSON: requests (``id``, ``version``, ``params``, ``method``, ``sys``) and replies
(``id``, ``code``, ``data``, ``message``), as Alibaba's "Alink protocol" page shows them.

``id`` is a string of digits in Alibaba's examples and SDKs; a number is accepted too and echoed
back as it came.
"""

from __future__ import annotations

from typing import Any

import msgspec

SUCCESS = 200
REQUEST_INVALID = 460  # Alibaba, "Error codes for devices": empty, malformed or too many params
DEVICE_OFFLINE = 9200  # Alibaba's cloud API: the device is not online
TIMEOUT = 5005  # Alibaba's cloud API: the device did not answer in time (RRPC TIMEOUT)


class Sys(msgspec.Struct, kw_only=True):
    ack: int = 1  # 0: the device wants no reply


class Request(msgspec.Struct, kw_only=True):
    id: str | int
    version: str = "1.0"
    params: Any = None
    method: str | None = None
    sys: Sys | None = None

    @property
    def wants_reply(self) -> bool:
        return self.sys is None or self.sys.ack != 0


class Reply(msgspec.Struct, kw_only=True):
    id: str | int
    code: int
    data: Any = None
    message: str | None = None
    method: str | None = None
    version: str | None = None


class Status(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A device's status message (``/as/mqtt/status/{pk}/{dn}``), in Alibaba's fields."""

    status: str
    iot_id: str
    product_key: str
    device_name: str
    time: str
    utc_time: str
    last_time: str
    utc_last_time: str
    client_ip: str | None = None  # left out when offline


class Call(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A request the platform sends a device."""

    id: str
    version: str
    params: Any
    method: str


_request = msgspec.json.Decoder(Request)
_reply = msgspec.json.Decoder(Reply)
_encoder = msgspec.json.Encoder()


def decode_request(payload: bytes) -> Request:
    """Raises ``msgspec.DecodeError`` (not JSON, or not an Alink request)."""
    return _request.decode(payload)


def decode_reply(payload: bytes) -> Reply:
    return _reply.decode(payload)


class _ReplyOut(msgspec.Struct, omit_defaults=True):
    """A reply as we send it (a Struct: encoded once per device message, faster than a dict)."""

    code: int
    data: Any
    id: str | int
    message: str
    version: str
    method: str | None = None  # left out when None


def reply_bytes(
    msg_id: str | int, code: int, method: str | None, message: str, data: Any = None
) -> bytes:
    reply = _ReplyOut(code, {} if data is None else data, msg_id, message, "1.0", method or None)
    return _encoder.encode(reply)


def call_bytes(msg_id: str, method: str, params: Any) -> bytes:
    return _encoder.encode(Call(id=msg_id, version="1.0", params=params, method=method))


def encode(value: Any) -> bytes:
    return _encoder.encode(value)
