"""Checking values against a thing model's data types.

A rejected value gives a ``Problem``: its ``kind`` (``messages.ProblemKind``: what is wrong, one
kind per check below), the identifier it concerns (the key in ``params``), and a message in
Alibaba's own words, ``tsl parse: <what> -> <where>``, where ``<where>`` is the path to the value
(``GeoLocation.latitude``, ``Schedule[2].OnTime``). A dialect answers its devices with its own
code for the kind (Alink's, with where each code was seen: ``dialects/alink/codes.py``).

Rules where Alibaba is loose or silent, and what we chose:

- ``step`` is advisory (a console hint for sliders): ``LightAdjustLevel = 37`` with step 5 passes.
- ``int`` must be a JSON integer in the spec range and int32; ``15.0`` and ``"15"`` are refused.
- ``float``/``double`` accept integers (``20`` for 20.0); a float must fit in 32 bits.
- ``text`` length counts characters (Python ``len``), as Alibaba's console states the limit.
- ``date`` is a string of digits (Alibaba's form) or a non-negative integer.
- ``bool`` and ``enum`` are JSON integers; ``true`` and ``"1"`` are refused.
- A struct may omit members (no per-member ``required`` exists in TSL); unknown members are
  ``unknown_identifier``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hongshan.messages import ProblemKind
from hongshan.things.tsl_types import (
    FLOAT32_MAX,
    INT32_MAX,
    INT32_MIN,
    TEXT_MAX_LENGTH,
    ArrayType,
    BoolType,
    DataType,
    DateType,
    EnumType,
    NumberType,
    Param,
    StructType,
    TextType,
)

# (kind, message) of the first thing wrong with a value, or None when it fits.
Fault = tuple[ProblemKind, str] | None


def check_value(data_type: DataType, value: Any, path: str) -> Fault:
    """Check one value against its data type; ``path`` names it in the message."""
    match data_type:
        case NumberType():
            return _check_number(data_type, value, path)
        case TextType():
            return _check_text(data_type, value, path)
        case DateType():
            return _check_date(value, path)
        case BoolType():
            if type(value) is not int:
                return (
                    ProblemKind.BOOL_WRONG_TYPE,
                    f"tsl parse: value of bool type must be int -> {path}",
                )
            if value not in (0, 1):
                return (
                    ProblemKind.BOOL_OUT_OF_RANGE,
                    f"tsl parse: bool value must be 0 or 1, not {value} -> {path}",
                )
            return None
        case EnumType():
            if type(value) is not int:
                return (
                    ProblemKind.ENUM_WRONG_TYPE,
                    f"tsl parse: value of enum type must be int -> {path}",
                )
            if str(value) not in data_type.labels:
                keys = ", ".join(data_type.labels)
                return (
                    ProblemKind.ENUM_NOT_A_KEY,
                    f"tsl parse: enum value {value} not in [{keys}] -> {path}",
                )
            return None
        case StructType():
            if not isinstance(value, dict):
                return (
                    ProblemKind.STRUCT_WRONG_TYPE,
                    f"tsl parse: struct type must be json object -> {path}",
                )
            return check_members(data_type.members, value, path + ".")
        case ArrayType():
            return _check_array(data_type, value, path)
    raise AssertionError(f"unknown data type {data_type!r}")  # pragma: no cover


DOUBLE_MAX = 1.7976931348623157e308  # the largest finite double


def quick_check(data_type: DataType) -> Callable[[Any], bool] | None:
    """A closure that says at once whether a value fits the common scalar types: True only
    where ``check_value`` finds nothing wrong (it is asked when this says False, for the words
    of the refusal). None for the types that have no quick form (date, struct, array). Built
    once per property: a property post checks five values per message at a town's rate."""
    match data_type:
        case NumberType(type="int"):
            lo = max(INT32_MIN, data_type.min) if data_type.min is not None else INT32_MIN
            hi = min(INT32_MAX, data_type.max) if data_type.max is not None else INT32_MAX
            return lambda v: type(v) is int and lo <= v <= hi
        case NumberType():
            limit = FLOAT32_MAX if data_type.type == "float" else DOUBLE_MAX
            low = max(-limit, data_type.min) if data_type.min is not None else -limit
            high = min(limit, data_type.max) if data_type.max is not None else limit
            # NaN fails both comparisons, infinities the limits: as check_value refuses them
            return lambda v: (type(v) is int or type(v) is float) and low <= v <= high
        case BoolType():
            return lambda v: type(v) is int and (v == 0 or v == 1)
        case EnumType():
            # check_value compares str(value) with the keys: "01" is not the key of 1
            keys = frozenset(
                int(k) for k in data_type.labels if k.lstrip("-").isdigit() and str(int(k)) == k
            )
            return lambda v: type(v) is int and v in keys
        case TextType():
            length = data_type.length if data_type.length is not None else TEXT_MAX_LENGTH
            return lambda v: type(v) is str and len(v) <= length
    return None


def check_members(params: tuple[Param, ...], values: dict[str, Any], prefix: str) -> Fault:
    """Check an object's members against ``params``: every key known, every value fitting."""
    by_id = {param.identifier: param for param in params}
    for key, value in values.items():
        param = by_id.get(key)
        if param is None:
            return ProblemKind.UNKNOWN_IDENTIFIER, f"tsl parse: params not exist -> {prefix}{key}"
        fault = check_value(param.data_type, value, prefix + key)
        if fault is not None:
            return fault
    return None


def _is_number(value: Any) -> bool:
    # bool is an int in Python but true/false are not numbers in JSON.
    return type(value) in (int, float)


def _check_number(data_type: NumberType, value: Any, path: str) -> Fault:
    kind = data_type.type
    if kind == "int":
        wrong_type, out_of_range = ProblemKind.INT_WRONG_TYPE, ProblemKind.INT_OUT_OF_RANGE
        if type(value) is not int:
            return wrong_type, f"tsl parse: data type is not int -> {path}"
        if not INT32_MIN <= value <= INT32_MAX:
            return out_of_range, f"tsl parse: int value {value} is out of int32 range -> {path}"
    else:
        wrong_type, out_of_range = ProblemKind.FLOAT_WRONG_TYPE, ProblemKind.FLOAT_OUT_OF_RANGE
        if not _is_number(value) or not math.isfinite(value):
            return wrong_type, f"tsl parse: data type is not {kind} -> {path}"
        if kind == "float" and abs(value) > FLOAT32_MAX:
            message = f"tsl parse: float value {value} does not fit in 32 bits -> {path}"
            return out_of_range, message
    if data_type.min is not None and value < data_type.min:
        bound = _show(data_type.min)
        message = f"tsl parse: {kind} value {value} is smaller than min {bound} -> {path}"
        return out_of_range, message
    if data_type.max is not None and value > data_type.max:
        bound = _show(data_type.max)
        message = f"tsl parse: {kind} value {value} is bigger than max {bound} -> {path}"
        return out_of_range, message
    return None


def _show(number: int | float) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


def _check_text(data_type: TextType, value: Any, path: str) -> Fault:
    if not isinstance(value, str):
        return ProblemKind.TEXT_WRONG_TYPE, f"tsl parse: data type is not string -> {path}"
    limit = data_type.length if data_type.length is not None else TEXT_MAX_LENGTH
    if len(value) > limit:
        return (
            ProblemKind.TEXT_TOO_LONG,
            f"tsl parse: string length {len(value)} bigger than max length {limit} -> {path}",
        )
    return None


def _check_date(value: Any, path: str) -> Fault:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return None
    if type(value) is int and value >= 0:
        return None
    return (
        ProblemKind.DATE_WRONG_TYPE,
        f"tsl parse: date type must be a string of long(UTC ms) -> {path}",
    )


def _check_array(data_type: ArrayType, value: Any, path: str) -> Fault:
    if not isinstance(value, list):
        return ProblemKind.ARRAY_WRONG_TYPE, f"tsl parse: data type is not array -> {path}"
    if len(value) > data_type.size:
        return (
            ProblemKind.ARRAY_TOO_LONG,
            f"tsl parse: array size {len(value)} is bigger than max size {data_type.size}"
            f" -> {path}",
        )
    for index, item in enumerate(value):
        fault = check_value(data_type.item, item, f"{path}[{index}]")
        if fault is not None:
            return fault
    return None
