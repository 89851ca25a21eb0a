"""Alink's JSON: requests (``id``, ``version``, ``params``, ``method``, ``sys``) and replies
(``id``, ``code``, ``data``, ``message``), as Alibaba's "Alink protocol" page shows them.

``id`` is a string of digits in Alibaba's examples and SDKs; a number is accepted too and echoed
back as it came. Alibaba's ids run from 0 to 4294967295 ("Alink protocol": "id: String,
0~4294967295"), so an id is at most 10 characters, or a number in that range: a longer one is
refused (460) before it is kept anywhere, in a reply's memory or a history line.

A payload that is no Alink message at all (not JSON, not UTF-8, nested deeper than
``MAX_DEPTH``, an ``id`` missing, null or of another type) raises ``MalformedMessage``, which
carries the Alink code to answer with and the id, where one could still be read. Every tap
that reads a device's JSON refuses such a payload the same way (``refuse``): answered on its
``_reply`` topic where the id could be read, and handed back to the tap, which tells the
publisher it was not accepted (PUBACK 0x99 in MQTT 5) and passes it to nobody.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec

from hongshan.errors import HongshanError
from hongshan.things.nesting import MAX_DEPTH, nests_deeper

SUCCESS = 200
AUTH_FAILED = 401  # Alibaba, "Error codes for devices": request auth error (a signature)
REQUEST_INVALID = 460  # Alibaba, "Error codes for devices": empty, malformed or too many params
NOT_JSON = 6207  # Alibaba, "Error codes for devices" (TSL): the Alink data is not JSON
DEVICE_OFFLINE = 9200  # Alibaba's cloud API: the device is not online
TIMEOUT = 5005  # Alibaba's cloud API: the device did not answer in time (RRPC TIMEOUT)


MAX_ID = 4_294_967_295  # Alibaba's largest message id
# an id as Alibaba's SDKs write it (a string), or a number, within Alibaba's range
MessageId = (
    Annotated[str, msgspec.Meta(max_length=len(str(MAX_ID)))]
    | Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
)


class Sys(msgspec.Struct, kw_only=True):
    ack: int = 1  # 0: the device wants no reply


class Request(msgspec.Struct, kw_only=True):
    id: MessageId
    version: str = "1.0"
    params: Any = None
    method: str | None = None
    sys: Sys | None = None

    @property
    def wants_reply(self) -> bool:
        return self.sys is None or self.sys.ack != 0


class Reply(msgspec.Struct, kw_only=True):
    id: MessageId
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


def status_stamps(second: int) -> tuple[str, str]:
    """A status message's times to the second: the server's local time as Alibaba writes
    ``time`` (``2018-08-31 15:32:28``), and UTC as ``utcTime`` (``2018-08-31T07:32:28``);
    the milliseconds (``.205``, and ``Z`` after UTC's) follow."""
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)),
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
    )


class Call(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A request the platform sends a device."""

    id: str
    version: str
    params: Any
    method: str


class _Head(msgspec.Struct):
    """Only a message's id: what is left to answer to when the rest cannot be read (the
    values it skips are not checked for UTF-8 or range)."""

    id: Any = None


_T = TypeVar("_T")
_request = msgspec.json.Decoder(Request)
_reply = msgspec.json.Decoder(Reply)
_head = msgspec.json.Decoder(_Head)
_encoder = msgspec.json.Encoder()
# the id at the head of a message, where Alibaba's SDKs write it (for a message that cannot
# be read whole: too deep, or not JSON further on); possessive, so that an unterminated string
# is given up in one pass and never backtracked into
_LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*("(?:[^"\\]|\\.)*+"|-?\d++)')


class MalformedMessage(HongshanError):
    """A device's payload on an Alink topic that is not an Alink message. ``protocol_code`` is
    the Alink code to answer with, ``msg_id`` the id to answer to (None: none could be read, so
    no answer is possible)."""

    protocol_code: int

    def __init__(self, message: str, code: int, msg_id: str | int | float | None) -> None:
        super().__init__(message)
        self.protocol_code = code
        self.msg_id = msg_id


def decode_request(payload: bytes) -> Request:
    """Raises ``MalformedMessage`` (not JSON, too deep, or not an Alink request)."""
    request = decode(_request, payload)
    _check_depth(payload, request.params, request.id)
    return request


def decode_reply(payload: bytes) -> Reply:
    """Raises ``MalformedMessage`` (not JSON, too deep, or not an Alink reply)."""
    reply = decode(_reply, payload)
    _check_depth(payload, reply.data, reply.id)
    return reply


def decode(decoder: msgspec.json.Decoder[_T], payload: bytes) -> _T:
    """A device's JSON message of the decoder's type; raises ``MalformedMessage`` (not JSON,
    nested past the decoder's own guard, or not of the type)."""
    try:
        return decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise _malformed(payload, exc) from None
    except RecursionError:  # msgspec's own guard, about a thousand levels deep
        raise _too_deep(_readable_id(payload)) from None


def refuse(
    exc: MalformedMessage, topic: str, method: str, publish: Callable[[str, bytes, int], None]
) -> MalformedMessage:
    """The one way a request that is no Alink message is refused: answered on ``topic``'s
    ``_reply`` topic with ``exc.protocol_code`` where its id could be read (Alibaba's "Error
    codes for devices": 6207 not JSON, 460 request parameter error), and returned for the tap
    to refuse (without an id, that refusal is all its device can be told)."""
    if exc.msg_id is not None:
        publish(topic + "_reply", reply_bytes(exc.msg_id, exc.protocol_code, method, str(exc)), 0)
    return unraised(exc)


def unraised(exc: MalformedMessage) -> MalformedMessage:
    """``exc`` to be returned, not raised: without its traceback and the decoder's error it
    was raised from, whose frames lead back to the caller that holds ``exc``. That cycle held
    each refused payload (up to a packet's megabyte) until the garbage collector came round:
    100 refused posts of 900 KB held 168 MiB."""
    exc.__context__ = None
    return exc.with_traceback(None)


def _check_depth(payload: bytes, value: Any, msg_id: str | int) -> None:
    """The message whole (its own object the first level, ``value`` within it) nests at most
    ``MAX_DEPTH`` levels. Checked on the decoded value: a scan of the raw text would have to
    skip strings, and a regular expression that does so can be made to take quadratic time
    (issue 12's second review: an unterminated string of escaped quotes, 80 KB in 29 s)."""
    brackets = payload.count(b"[") + payload.count(b"{")  # (few, in nearly every message)
    if brackets > MAX_DEPTH and nests_deeper(value, MAX_DEPTH - 1):
        raise _too_deep(msg_id)


def _too_deep(msg_id: str | int | float | None) -> MalformedMessage:
    message = f"request parameter error: nested deeper than {MAX_DEPTH} levels"
    return MalformedMessage(message, REQUEST_INVALID, msg_id)


def _malformed(payload: bytes, exc: msgspec.DecodeError) -> MalformedMessage:
    if isinstance(exc, msgspec.ValidationError):  # JSON, but not of an Alink message's shape
        detail = f"{exc} (an id is 0 to {MAX_ID})" if str(exc).endswith("`$.id`") else exc
        return MalformedMessage(
            f"request parameter error: {detail}", REQUEST_INVALID, _readable_id(payload)
        )
    # not JSON: malformed, NaN or Infinity (RFC 8259 section 6), not UTF-8 (section 8.1)
    return MalformedMessage(f"not JSON: {exc}", NOT_JSON, _readable_id(payload))


def _readable_id(payload: bytes) -> str | int | float | None:
    """The message's id, if it has one of a type an id can have (a float is echoed back as it
    came, so that its sender can match our answer)."""
    try:
        found = _head.decode(payload).id
    except (msgspec.DecodeError, RecursionError):  # (msgspec's own guard, past 1,000 levels)
        match = _LEADING_ID.match(payload)
        if match is None:
            return None
        try:
            found = msgspec.json.decode(match.group(1))
        except msgspec.DecodeError:  # a string that is not UTF-8, a number out of range
            return None
    return found if type(found) in (str, int, float) else None


class _ReplyOut(msgspec.Struct, omit_defaults=True):
    """A reply as we send it (a Struct: encoded once per device message, faster than a dict)."""

    code: int
    data: Any
    id: str | int | float
    message: str
    version: str
    method: str | None = None  # left out when None


def reply_bytes(
    msg_id: str | int | float, code: int, method: str | None, message: str, data: Any = None
) -> bytes:
    reply = _ReplyOut(code, {} if data is None else data, msg_id, message, "1.0", method or None)
    return _encoder.encode(reply)


def call_bytes(msg_id: str, method: str, params: Any) -> bytes:
    return _encoder.encode(Call(id=msg_id, version="1.0", params=params, method=method))


def encode(value: Any) -> bytes:
    return _encoder.encode(value)
