"""The values a rule computes with, and AWS IoT SQL's rules for mixing their types.

A value is what decoded JSON holds — ``int``, ``float``, ``str``, ``bool``, ``None`` (JSON's
null), ``list``, ``dict`` — or ``UNDEFINED``: no value at all, what reading a missing field
gives (AWS's *Undefined*). Every operation here is total: a wrong type, a string that is no
number, a division by zero give ``UNDEFINED``, never an exception, so that no payload can make
a rule raise. The conversions are AWS IoT's "Conversions" table; the package docstring says
which of its choices a user meets.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any, Final

import msgspec


class _Undefined:
    """No value: a missing field, a failed conversion. One instance, ``UNDEFINED``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()

# AWS: "strings matching ^-?\d+(\.\d+)?((?i)E-?\d+)?$ are converted automatically"
_NUMERIC = re.compile(r"-?\d+(?:(\.\d+)?(?:[eE]-?\d+)?)")
_INTEGER = re.compile(r"-?\d+")
_encode_json = msgspec.json.Encoder().encode


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool (which Python counts as an int)."""
    kind = type(value)
    return kind is int or kind is float


def to_number(value: Any) -> Any:
    """AWS's conversion to Decimal: a number as it is, a numeric string as an int (digits only)
    or a float, null stays null, anything else (booleans included) is ``UNDEFINED``."""
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is str:
        # (a bounded length: Python refuses to convert ints of more than 4300 digits)
        if len(value) <= 400 and _NUMERIC.fullmatch(value):
            return int(value) if _INTEGER.fullmatch(value) else _finite(float(value))
        return UNDEFINED
    if value is None:
        return None
    return UNDEFINED


def to_int(value: Any) -> Any:
    """AWS's conversion to Int: a number or numeric string with its decimals cut off (AWS's
    ``substring("012345", 2.745)`` is ``"2345"``); ``UNDEFINED`` for anything else."""
    number = to_number(value)
    if type(number) is float:
        return int(number) if math.isfinite(number) else UNDEFINED
    return number if type(number) is int else UNDEFINED


def to_bool(value: Any) -> Any:
    """AWS's conversion to Boolean: a bool, or the string "true" or "false" in any case."""
    if value is True or value is False:
        return value
    if type(value) is str:
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return UNDEFINED


def to_string(value: Any) -> Any:
    """AWS's conversion to String: a bool as ``true``/``false``, a number in plain notation, an
    array or object as its JSON; null and ``UNDEFINED`` have none (``UNDEFINED``)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        try:
            return str(value)
        except ValueError:  # more digits than Python converts (sys.int_info.str_digits_check)
            return UNDEFINED
    if kind is float:
        return repr(value) if math.isfinite(value) else UNDEFINED
    if kind is list or kind is dict:
        try:
            return _encode_json(value).decode()
        except (TypeError, ValueError, OverflowError):
            return UNDEFINED
    return UNDEFINED


def truth(value: Any) -> Any:
    """What AND, OR, NOT and WHERE make of a value: True, False or ``UNDEFINED``."""
    if value is True or value is False:
        return value
    return to_bool(value)


def equals(left: Any, right: Any) -> Any:
    """AWS's ``=``: ``UNDEFINED`` if either side is; numbers by value (``1 = 1.0``); strings,
    booleans, nulls, arrays (in order) and objects (any key order) by content; values of
    different types are not equal (``'5' = 5`` is false)."""
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    return same(left, right)


def same(left: Any, right: Any) -> bool:
    """Equality of two JSON values, with AWS's types: no bool equals a number."""
    left_type = type(left)
    right_type = type(right)
    if left_type is right_type:
        if left_type is list:
            return len(left) == len(right) and all(map(same, left, right))
        if left_type is dict:
            return left.keys() == right.keys() and all(same(v, right[k]) for k, v in left.items())
        return bool(left == right)
    if (left_type is int or left_type is float) and (right_type is int or right_type is float):
        return bool(left == right)
    return False


def order(left: Any, right: Any) -> Any:
    """AWS's ``<``, ``>``...: both sides as numbers (numeric strings converted), compared: -1, 0
    or 1; ``UNDEFINED`` when either is no number (a missing field, null, a bool, an object)."""
    a = to_number(left)
    b = to_number(right)
    if a is None or b is None or a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    return -1 if a < b else (1 if a > b else 0)


def add(left: Any, right: Any) -> Any:
    """AWS's ``+``: with a string on either side, the other side as a string appended; two
    numbers added; anything else ``UNDEFINED``."""
    if type(left) is str or type(right) is str:
        a = to_string(left)
        b = to_string(right)
        return UNDEFINED if a is UNDEFINED or b is UNDEFINED else a + b
    if is_number(left) and is_number(right):
        return _arithmetic(operator.add, left, right)
    return UNDEFINED


def _operands(left: Any, right: Any) -> tuple[Any, Any] | None:
    a = to_number(left)
    b = to_number(right)
    if a is None or b is None or a is UNDEFINED or b is UNDEFINED:
        return None
    return a, b


def subtract(left: Any, right: Any) -> Any:
    """AWS's ``-``: numbers, or numeric strings, subtracted."""
    pair = _operands(left, right)
    return UNDEFINED if pair is None else _arithmetic(operator.sub, *pair)


def multiply(left: Any, right: Any) -> Any:
    """AWS's ``*``."""
    pair = _operands(left, right)
    return UNDEFINED if pair is None else _arithmetic(operator.mul, *pair)


def divide(left: Any, right: Any) -> Any:
    """AWS's ``/``: an int divided by an int is an int, cut toward zero (``7 / 2`` is 3,
    ``-7 / 2`` is -3); with a float on either side, a float; by zero, ``UNDEFINED``."""
    pair = _operands(left, right)
    if pair is None or not pair[1]:
        return UNDEFINED
    a, b = pair
    if type(a) is int and type(b) is int:
        quotient = abs(a) // abs(b)
        return quotient if (a < 0) == (b < 0) else -quotient
    return _arithmetic(operator.truediv, a, b)


def remainder(left: Any, right: Any) -> Any:
    """AWS's ``%`` and ``mod()``: the remainder of the division cut toward zero, so it has the
    sign of the dividend (``-7 % 3`` is -1), as Java's; by zero, ``UNDEFINED``."""
    pair = _operands(left, right)
    if pair is None or not pair[1]:
        return UNDEFINED
    a, b = pair
    if type(a) is int and type(b) is int:
        rest = abs(a) % abs(b)
        return -rest if a < 0 else rest
    return _arithmetic(math.fmod, a, b)


def negate(value: Any) -> Any:
    """Unary minus: a number, or a numeric string, negated."""
    number = to_number(value)
    return UNDEFINED if number is None or number is UNDEFINED else -number


def _arithmetic(operation: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    try:
        return _finite(operation(a, b))
    except OverflowError:  # an int too large for a float, met with a float
        return UNDEFINED


def _finite(number: Any) -> Any:
    if type(number) is float and not math.isfinite(number):
        return UNDEFINED
    return number
