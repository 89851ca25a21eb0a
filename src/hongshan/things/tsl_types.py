"""The parts of an Alibaba thing model (TSL) as frozen, keyword-only data.

A TSL file describes a product in three lists — properties, events, services — whose values are
described by a ``dataType`` of one of nine types. Field names here are Python's spelling of
Alibaba's JSON keys (``accessMode`` → ``access_mode``); ``hongshan.things.tsl`` reads and writes
the JSON. Two kinds of bookkeeping exist only so that an imported file is exported unchanged:

- ``written`` keeps a numeric spec exactly as the file wrote it: Alibaba's console writes
  ``"min": "0"`` (a string), other tools write ``"min": 0``; both parse to the same ``min``.
- ``extra`` keeps keys Alibaba may add that we do not model (``expands``, ``functionBlockId``...);
  ``specs_extra`` does the same inside ``specs``. ``has_specs`` is false for a ``dataType`` written
  without ``specs`` (an array's ``"item": {"type": "int"}``).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

from hongshan.errors import HongshanError

Number: TypeAlias = int | float
# A numeric spec as the file wrote it: Alibaba's exports use strings, hand-written files numbers.
Written: TypeAlias = str | int | float

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# The largest finite IEEE 754 single-precision value: a "float" property is 32-bit.
FLOAT32_MAX = 3.4028234663852886e38
# Alibaba: a text value is at most 10240 characters; a text spec's length may not exceed it.
TEXT_MAX_LENGTH = 10240


class TslError(HongshanError):
    """A thing-model file is not valid TSL; the message starts with the path of what is wrong,
    e.g. ``properties[3].dataType.specs.min: not a number``."""

    http_status = 400

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _dict() -> dict[str, Any]:
    return {}


class _DataTypeBase(msgspec.Struct, frozen=True, kw_only=True):
    extra: dict[str, Any] = msgspec.field(default_factory=_dict)
    has_specs: bool = True


class NumberType(_DataTypeBase, frozen=True, kw_only=True):
    """``int`` (32-bit), ``float`` (32-bit) or ``double``; ``step`` is advisory (see tsl_check)."""

    type: Literal["int", "float", "double"]
    min: Number | None = None
    max: Number | None = None
    step: Number | None = None
    unit: str | None = None
    unit_name: str | None = None
    written: dict[str, Written] = msgspec.field(default_factory=_dict)
    specs_extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class TextType(_DataTypeBase, frozen=True, kw_only=True):
    """A string of at most ``length`` characters (at most 10240)."""

    type: Literal["text"] = "text"
    length: int | None = None
    written: dict[str, Written] = msgspec.field(default_factory=_dict)
    specs_extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class DateType(_DataTypeBase, frozen=True, kw_only=True):
    """A UTC time in milliseconds, sent as a string of digits (or, leniently, an integer)."""

    type: Literal["date"] = "date"
    specs_extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class BoolType(_DataTypeBase, frozen=True, kw_only=True):
    """0 or 1, with a label for each: ``{"0": "off", "1": "on"}``."""

    type: Literal["bool"] = "bool"
    labels: dict[str, str]


class EnumType(_DataTypeBase, frozen=True, kw_only=True):
    """An integer among the keys of ``labels`` (``{"0": "manual", "1": "auto"}``)."""

    type: Literal["enum"] = "enum"
    labels: dict[str, str]


class StructType(_DataTypeBase, frozen=True, kw_only=True):
    """A JSON object whose members are described by ``members``."""

    type: Literal["struct"] = "struct"
    members: tuple[Param, ...]


class ArrayType(_DataTypeBase, frozen=True, kw_only=True):
    """A JSON array of at most ``size`` items, each of type ``item``."""

    type: Literal["array"] = "array"
    size: int
    item: DataType
    written: dict[str, Written] = msgspec.field(default_factory=_dict)
    specs_extra: dict[str, Any] = msgspec.field(default_factory=_dict)


DataType: TypeAlias = (
    NumberType | TextType | DateType | BoolType | EnumType | StructType | ArrayType
)


class Param(msgspec.Struct, frozen=True, kw_only=True):
    """A struct member, or one input or output parameter of a service or event."""

    identifier: str
    name: str
    data_type: DataType
    desc: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class Property(msgspec.Struct, frozen=True, kw_only=True):
    """A property: ``r`` is only reported by the device, ``rw`` may also be set by the cloud.

    ``required`` marks a feature of Alibaba's standard category, not a value every post must
    carry: a post may report any subset of the properties.
    """

    identifier: str
    name: str
    access_mode: Literal["r", "rw"]
    data_type: DataType
    required: bool | None = None
    desc: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An event the device posts: ``info``, ``alert`` or ``error``, carrying ``output_data``."""

    identifier: str
    name: str
    type: Literal["info", "alert", "error"]
    output_data: tuple[Param, ...] = ()
    method: str | None = None
    required: bool | None = None
    desc: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class Service(msgspec.Struct, frozen=True, kw_only=True):
    """A service the cloud calls, ``async`` (reply on a topic) or ``sync`` (over RRPC).

    Alibaba's generated ``get`` service lists property identifiers as its input rather than
    parameters; those land in ``input_identifiers`` and ``input_data`` stays empty.
    """

    identifier: str
    name: str
    call_type: Literal["async", "sync"]
    input_data: tuple[Param, ...] = ()
    input_identifiers: tuple[str, ...] = ()
    output_data: tuple[Param, ...] = ()
    method: str | None = None
    required: bool | None = None
    desc: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=_dict)


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """Which product the model belongs to, and the TSL version Alibaba stamped on it."""

    product_key: str
    version: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=_dict)
