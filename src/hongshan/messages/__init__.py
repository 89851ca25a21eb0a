"""The platform's own words for what devices say and are told, whatever protocol they speak.

A dialect (Alink, ThingsBoard) turns a device's publish into an ``Uplink`` and a ``Downlink``
into the device's protocol; everything between — the pipeline, the twin, the history, the REST
API, later rules and the console — sees only these. They import nothing of the platform, and
are msgspec Structs, serialisable as they are (``encode``/``decode``), so that a bus between
processes carries them unchanged.

::

    Uplink (device, key, received)           a device said something
    ├── PropertyValues  values, ts, device_time     property values (with the device's times)
    ├── EventRaised     event, params, ts           an event of its thing model
    ├── ServiceReplied  call_id, service, code,…    its answer to a property set or service call
    ├── StatusChanged   online, reason, address     it came or went (``gateway``: through one)
    ├── FirmwareReported versions                   module → version it runs
    ├── Registered      how                         it registered itself and got its credential
    ├── CommandSent     call_id, service, params    (the platform's record) a call went to it
    └── CommandGivenUp  call_id, service, why, state (the platform's record) one was given up

    Downlink (device, call_id, timeout)      the platform asks a device
    ├── SetProperties   values
    ├── CallService     service, params
    ├── RawCall         payload, topic              raw bytes, answered with raw bytes (RRPC)
    └── PushDesired     values                      desired values, not waited for

    CommandResult (call_id, outcome, code, output, message, problems)

``key`` is the uplink's idempotency key: the same message sent again (a QoS 1 resend after a
lost acknowledgement) has the same key, and is kept once. Empty for a message that may be lost
but is never resent (QoS 0, the platform's own status changes).
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

Value = Any  # a property's or parameter's value as JSON has it

# The longest any command waits for a device's answer, in seconds: Alibaba's own limit for RRPC
# and synchronous services (RRpc, InvokeThingService: Timeout 1,000 to 8,000 ms). A later answer
# is not lost: it comes as ``ServiceReplied`` and is kept in the device's history.
MAX_WAIT = 8.0
DEFAULT_WAIT = 5.0  # a call's wait when its caller says none (Alibaba's synchronous calls: 5 s)


class DeviceRef(msgspec.Struct, frozen=True, array_like=True):
    """One device of one product: the pair that names a device everywhere in the platform."""

    product: str
    device: str


class Uplink(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    device: DeviceRef
    received: int  # ms since the epoch, the server's clock
    key: bytes = b""


class PropertyValues(Uplink, frozen=True, kw_only=True, tag="property_values"):
    """Property values posted by a device. ``ts``: the device's time when it gave one that is
    plausible, else the arrival; ``device_time``: per-property times where the device gave
    them (a history post, a gateway's pack)."""

    values: dict[str, Value]
    ts: int
    device_time: dict[str, int] = {}
    message_id: str = ""  # the device's own id for the message, where its protocol has one


class EventRaised(Uplink, frozen=True, kw_only=True, tag="event"):
    event: str
    params: dict[str, Value]
    ts: int
    message_id: str = ""


class ServiceReplied(Uplink, frozen=True, kw_only=True, tag="service_reply"):
    """A device's answer to a call: ``service`` is ``set`` for a property set."""

    call_id: str
    service: str
    code: int
    output: Value = None
    message: str = ""


class StatusChanged(Uplink, frozen=True, kw_only=True, tag="status"):
    online: bool
    reason: str = ""  # why it went: "disconnect", "keep alive timeout", "server restarted", …
    address: str = ""  # host:port it connected from
    gateway: DeviceRef | None = None  # the gateway it came or went through


class FirmwareReported(Uplink, frozen=True, kw_only=True, tag="firmware"):
    versions: dict[str, str]  # module ("default" for the device's own) → version


class Registered(Uplink, frozen=True, kw_only=True, tag="registered"):
    how: str  # the protocol's name for the flavour of registration


class CommandSent(Uplink, frozen=True, kw_only=True, tag="command_sent"):
    """The platform's record, in the device's stream: a call went to the device (a property
    set: ``sets_properties``, ``service`` ``set``). Its answer comes as ``ServiceReplied`` with
    the same id."""

    call_id: str
    service: str
    params: Value = None
    sets_properties: bool = False


class CommandGivenUp(Uplink, frozen=True, kw_only=True, tag="command_given_up"):
    """A call given up before the device answered: sent and waited for when the platform
    stopped (``state`` ``given_up``, from the dialect), or a tracked command that ended
    without an answer (``state`` ``timed_out``, ``failed``, ``expired``, ``cancelled``, with
    its ``command_id``; ``call_id`` is empty when it was never sent)."""

    call_id: str
    service: str
    why: str
    sets_properties: bool = False
    state: str = "given_up"
    command_id: int = 0


class Downlink(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    device: DeviceRef
    call_id: str = ""  # given by the dialect when empty
    # seconds to wait for the device's answer; None: sent, not waited for
    timeout: float | None = None


class SetProperties(Downlink, frozen=True, kw_only=True, tag="set_properties"):
    values: dict[str, Value]


class CallService(Downlink, frozen=True, kw_only=True, tag="call_service"):
    service: str
    params: dict[str, Value]


class RawCall(Downlink, frozen=True, kw_only=True, tag="raw_call"):
    """Raw bytes to a device, its raw answer in ``CommandResult.output`` (Alibaba's RRPC).
    ``topic``: one of the device's own topics to call over, where its protocol allows one."""

    payload: bytes
    topic: str | None = None


class PushDesired(Downlink, frozen=True, kw_only=True, tag="push_desired"):
    values: dict[str, Value]


class Outcome(enum.StrEnum):
    REPLIED = "replied"  # the device answered (its code says how it went)
    SENT = "sent"  # sent, not waited for
    TIMED_OUT = "timed_out"
    OFFLINE = "offline"  # the device is not connected: nothing was sent
    REFUSED = "refused"  # it does not fit the device's thing model or protocol: nothing sent


class ProblemKind(enum.StrEnum):
    """What is wrong with a value or a call, one kind per check the thing model makes. A
    dialect tells its devices in its protocol's terms (Alink: a code per kind, in
    ``dialects/alink/codes.py``)."""

    INVALID = "invalid"  # the params as a whole: empty, not an object or list, a bad time
    UNKNOWN_CALL = "unknown_call"  # the model has no such event or service
    UNKNOWN_IDENTIFIER = "unknown_identifier"  # no such property, parameter or struct member
    READ_ONLY = "read_only"  # a property set names a property that is only read
    INT_WRONG_TYPE = "int_wrong_type"  # not a JSON integer
    INT_OUT_OF_RANGE = "int_out_of_range"  # outside int32, or its min and max
    FLOAT_WRONG_TYPE = "float_wrong_type"  # (float or double) not a finite number
    FLOAT_OUT_OF_RANGE = "float_out_of_range"  # a float past 32 bits, or outside min and max
    BOOL_WRONG_TYPE = "bool_wrong_type"  # not a JSON integer
    BOOL_OUT_OF_RANGE = "bool_out_of_range"  # not 0 or 1
    ENUM_WRONG_TYPE = "enum_wrong_type"  # not a JSON integer
    ENUM_NOT_A_KEY = "enum_not_a_key"  # not one of its keys
    TEXT_WRONG_TYPE = "text_wrong_type"  # not a string
    TEXT_TOO_LONG = "text_too_long"  # longer than its length
    DATE_WRONG_TYPE = "date_wrong_type"  # not UTC milliseconds (digits, or an integer)
    STRUCT_WRONG_TYPE = "struct_wrong_type"  # not an object
    ARRAY_WRONG_TYPE = "array_wrong_type"  # not a list
    ARRAY_TOO_LONG = "array_too_long"  # more items than its size


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """What is wrong with a value or a call (``kind``), the identifier it concerns (its path
    within a struct or array in ``message``), and a message that says it in words."""

    kind: ProblemKind
    identifier: str = ""
    message: str = ""


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    call_id: str
    outcome: Outcome
    code: int  # the protocol's reply code (the device's, or the dialect's for the outcome)
    output: Value = None
    message: str = ""
    problems: list[Problem] = []  # REFUSED: the call's; REPLIED: the device's output's


UPLINKS: tuple[type[Uplink], ...] = (
    PropertyValues,
    EventRaised,
    ServiceReplied,
    StatusChanged,
    FirmwareReported,
    Registered,
    CommandSent,
    CommandGivenUp,
)
DOWNLINKS: tuple[type[Downlink], ...] = (SetProperties, CallService, RawCall, PushDesired)


def kinds_of(kinds: tuple[type[Uplink], ...]) -> tuple[type[Uplink], ...]:
    """The uplinks' own types these kinds stand for (a base class for every kind derived from
    it; none for all of them): uplinks are handed round by their exact type, one lookup."""
    chosen = tuple(kind for kind in UPLINKS if any(issubclass(kind, k) for k in kinds or UPLINKS))
    if not chosen:
        raise TypeError(f"no uplink is of the kinds {kinds!r}")
    return chosen


_uplink_decoder = msgspec.msgpack.Decoder(
    PropertyValues
    | EventRaised
    | ServiceReplied
    | StatusChanged
    | FirmwareReported
    | Registered
    | CommandSent
    | CommandGivenUp
)
_downlink_decoder = msgspec.msgpack.Decoder(SetProperties | CallService | RawCall | PushDesired)
_result_decoder = msgspec.msgpack.Decoder(CommandResult)
encode = msgspec.msgpack.encode


def decode_uplink(data: bytes) -> Uplink:
    result: Uplink = _uplink_decoder.decode(data)
    return result


def decode_downlink(data: bytes) -> Downlink:
    result: Downlink = _downlink_decoder.decode(data)
    return result


def decode_result(data: bytes) -> CommandResult:
    return _result_decoder.decode(data)
