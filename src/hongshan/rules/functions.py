"""The functions a rule may call, as data: ``FUNCTIONS``, by lower-case name.

Each is total, like the operators (``values``): a wrong argument gives ``UNDEFINED``. Those
marked ``reads_message`` are called with the ``RuleInput`` first; those not ``constant`` (a
random UUID) are never folded into a constant when their arguments are constants.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import time
import uuid
import warnings
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hongshan.rules.message import RuleInput
from hongshan.rules.values import UNDEFINED, remainder, to_int, to_number, to_string


@dataclass(frozen=True, slots=True)
class Function:
    """One function: its documented name, how many arguments it takes, what it does."""

    name: str
    min_args: int
    max_args: int
    call: Callable[..., Any]
    reads_message: bool = False
    constant: bool = True

    def arity(self) -> str:
        """How many arguments, in words (for a refusal)."""
        if self.min_args == self.max_args:
            count = self.min_args
            return "no arguments" if count == 0 else f"{count} argument{'s' * (count > 1)}"
        return f"{self.min_args} to {self.max_args} arguments"


# -- the message and the device ----------------------------------------------------------------


def _device_name(message: RuleInput) -> Any:
    return UNDEFINED if message.device is None else message.device.device


def _product_key(message: RuleInput) -> Any:
    return UNDEFINED if message.device is None else message.device.product


def _client_id(message: RuleInput) -> Any:
    return message.client_id or "n/a"


def _topic(message: RuleInput, level: Any = UNDEFINED) -> Any:
    """``topic()``: the whole topic; ``topic(n)``: its n-th level from 1. Alibaba's topics
    start with ``/``: ``topic(1)`` of ``/a1B/lamp/user/update`` is ``a1B``, not the empty
    level before the first slash."""
    if level is UNDEFINED:
        return message.topic
    number = to_int(level)
    if number is UNDEFINED or number is None or number < 1:
        return UNDEFINED
    levels = message.topic.split("/")
    if message.topic.startswith("/"):
        levels = levels[1:]
    return levels[number - 1] if number <= len(levels) else UNDEFINED


def _received(message: RuleInput) -> int:
    return message.received if message.received is not None else time.time_ns() // 1_000_000


def _timestamp(message: RuleInput, pattern: Any = UNDEFINED) -> Any:
    """``timestamp()``: when the message arrived, in ms; ``timestamp(pattern)``: that time
    formatted as ``format_date`` does, in UTC."""
    received = _received(message)
    if pattern is UNDEFINED:
        return received
    return _format_date(received, pattern)


def _attribute(message: RuleInput, key: Any) -> Any:
    name = to_string(key)
    if name is UNDEFINED:
        return UNDEFINED
    value = message.tags(name)
    return UNDEFINED if value is None else value


def _latest(message: RuleInput, identifier: Any) -> Any:
    if type(identifier) is not str:
        return UNDEFINED
    value = message.latest(identifier)
    return UNDEFINED if value is None else value


def _new_uuid() -> str:
    return str(uuid.uuid4())


# -- numbers -----------------------------------------------------------------------------------


def _abs(value: Any) -> Any:
    number = to_number(value)
    return UNDEFINED if number is None or number is UNDEFINED else abs(number)


def _rounded(how: Callable[[float], int]) -> Callable[[Any], Any]:
    def rounded(value: Any) -> Any:
        number = to_number(value)
        if number is None or number is UNDEFINED:
            return UNDEFINED
        return number if type(number) is int else how(number)

    return rounded


def _half_away_from_zero(number: float) -> int:
    # AWS: round(1.5) = 2, round(-1.5) = -2 (Python's round() would give 2 and -2, but
    # round(2.5) = 2: it rounds half to even)
    whole = math.floor(abs(number) + 0.5)
    return -whole if number < 0 else whole


def _power(base: Any, exponent: Any) -> Any:
    a = to_number(base)
    b = to_number(exponent)
    if a is None or b is None or a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    try:
        result = math.pow(a, b)
    except (OverflowError, ValueError):  # too large, or a negative number's fractional power
        return UNDEFINED
    return result if math.isfinite(result) else UNDEFINED


def _nanvl(value: Any, default: Any) -> Any:
    if value is UNDEFINED or value is None or (type(value) is float and math.isnan(value)):
        return default
    return value


# -- strings and collections -------------------------------------------------------------------


def _concat(*values: Any) -> Any:
    """AWS's ``concat``: with an array among the arguments, one array of them all (arrays
    spliced in); otherwise the arguments as strings, joined (AWS's ``concat(1)`` is ``"1"``)."""
    if not values or any(value is UNDEFINED for value in values):
        return UNDEFINED
    if any(type(value) is list for value in values):
        joined: list[Any] = []
        for value in values:
            if type(value) is list:
                joined.extend(value)
            else:
                joined.append(value)
        return joined
    texts = [to_string(value) for value in values]
    return UNDEFINED if UNDEFINED in texts else "".join(texts)


def _text_function(transform: Callable[[str], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        text = to_string(value)
        return UNDEFINED if text is UNDEFINED else transform(text)

    return apply


def _two_texts(test: Callable[[str, str], Any]) -> Callable[[Any, Any], Any]:
    def apply(first: Any, second: Any) -> Any:
        a = to_string(first)
        b = to_string(second)
        return UNDEFINED if a is UNDEFINED or b is UNDEFINED else test(a, b)

    return apply


def _substring(value: Any, start: Any, end: Any = UNDEFINED) -> Any:
    """AWS's ``substring``: from ``start`` (from 0) to ``end`` (excluded), both cut to the
    string's bounds; decimals of an index are cut off."""
    text = to_string(value)
    first = to_int(start)
    if text is UNDEFINED or first is UNDEFINED or first is None:
        return UNDEFINED
    size = len(text)
    first = min(max(first, 0), size)
    if end is UNDEFINED:
        return text[first:]
    last = to_int(end)
    if last is UNDEFINED or last is None:
        return UNDEFINED
    last = min(max(last, 0), size)
    return text[first:last] if first < last else ""


def _replace(value: Any, old: Any, new: Any) -> Any:
    texts = [to_string(value), to_string(old), to_string(new)]
    if UNDEFINED in texts:
        return UNDEFINED
    return texts[0].replace(texts[1], texts[2])


def _regexp_matches(value: Any, pattern: Any) -> Any:
    """Whether ``value`` (as a string) contains a match of the regular expression
    ``pattern`` (Python's syntax, which agrees with Java's on the common parts); an invalid
    pattern gives ``UNDEFINED``, as in AWS."""
    text = to_string(value)
    source = to_string(pattern)
    if text is UNDEFINED or source is UNDEFINED:
        return UNDEFINED
    compiled = regular_expression(source)
    return UNDEFINED if compiled is None else compiled.search(text) is not None


@functools.lru_cache(maxsize=256)
def regular_expression(source: str) -> re.Pattern[str] | None:
    """``source`` compiled, or None when it is no regular expression (cached: a rule's
    patterns are few and used on every message)."""
    try:
        with warnings.catch_warnings():
            # (a pattern Python means to read differently one day, "[[", is still one today)
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(source)
    except (re.error, RecursionError, OverflowError):
        return None


def get_item(container: Any, key: Any) -> Any:
    """AWS's ``get``: an array's item by its index from 0, a string's character, an object's
    value by its key (a string); ``UNDEFINED`` outside the bounds or for anything else."""
    kind = type(container)
    if kind is dict:
        return container.get(key, UNDEFINED) if type(key) is str else UNDEFINED
    if kind is list or kind is str:
        index = to_int(key)
        if index is UNDEFINED or index is None or not 0 <= index < len(container):
            return UNDEFINED
        return container[index]
    return UNDEFINED


def _length(value: Any) -> Any:
    if type(value) is list or type(value) is dict:
        return len(value)
    text = to_string(value)
    return UNDEFINED if text is UNDEFINED else len(text)


def _is_null(value: Any) -> bool:
    return value is None


def _is_undefined(value: Any) -> bool:
    return value is UNDEFINED


# -- dates -------------------------------------------------------------------------------------

_PATTERN_PARTS = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|[^A-Za-z']+")
_ZONE_OFFSET = re.compile(r"(?:(?:GMT|UTC))?([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _format_date(timestamp: Any, pattern: Any, zone: Any = "UTC") -> Any:
    """``format_date(ms, pattern[, zone])``: a time in ms since the epoch written with Java's
    date pattern letters (``yyyy-MM-dd HH:mm:ss.SSS``, ``'T'`` for a literal T), in ``zone``
    (``UTC``, ``GMT+8``, ``+08:00``, ``Asia/Shanghai``; UTC when not given)."""
    millis = to_int(timestamp)
    text = to_string(pattern)
    where = _zone(zone) if type(zone) is str else None
    if millis is UNDEFINED or millis is None or text is UNDEFINED or where is None:
        return UNDEFINED
    try:
        moment = dt.datetime.fromtimestamp(millis / 1000, where)
    except (OverflowError, ValueError, OSError):
        return UNDEFINED
    parts = _pattern(text)
    if parts is None:
        return UNDEFINED
    return "".join(part if isinstance(part, str) else part(moment) for part in parts)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo | None:
    if name.upper() in ("UTC", "GMT", "Z"):
        return dt.UTC
    offset = _ZONE_OFFSET.fullmatch(name)
    if offset is not None:
        sign, hours, minutes = offset.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta >= dt.timedelta(hours=24):
            return None
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _offset(moment: dt.datetime, colon: bool) -> str:
    offset = moment.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{rest:02d}"


def _letter(letter: str, count: int) -> Callable[[dt.datetime], str] | None:
    def padded(read: Callable[[dt.datetime], int]) -> Callable[[dt.datetime], str]:
        return lambda moment: str(read(moment)).zfill(count)

    match letter:
        case "y":
            if count == 2:
                return lambda moment: f"{moment.year % 100:02d}"
            return padded(lambda moment: moment.year)
        case "M":
            if count >= 4:
                return lambda moment: _MONTHS[moment.month - 1]
            if count == 3:
                return lambda moment: _MONTHS[moment.month - 1][:3]
            return padded(lambda moment: moment.month)
        case "d":
            return padded(lambda moment: moment.day)
        case "H":
            return padded(lambda moment: moment.hour)
        case "h":
            return padded(lambda moment: moment.hour % 12 or 12)
        case "m":
            return padded(lambda moment: moment.minute)
        case "s":
            return padded(lambda moment: moment.second)
        case "S":
            return padded(lambda moment: moment.microsecond // 1000)
        case "a":
            return lambda moment: "AM" if moment.hour < 12 else "PM"
        case "E":
            if count >= 4:
                return lambda moment: _DAYS[moment.weekday()]
            return lambda moment: _DAYS[moment.weekday()][:3]
        case "Z":
            return lambda moment: _offset(moment, colon=False)
        case "X":
            return lambda moment: (
                "Z" if not moment.utcoffset() else _offset(moment, colon=count >= 3)
            )
    return None  # a letter Java's patterns have and we do not, or one they do not have


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> tuple[str | Callable[[dt.datetime], str], ...] | None:
    parts: list[str | Callable[[dt.datetime], str]] = []
    position = 0
    for match in _PATTERN_PARTS.finditer(text):
        if match.start() != position:  # (an unclosed quote)
            return None
        position = match.end()
        part = match[0]
        if part.startswith("'"):
            parts.append("'" if part == "''" else part[1:-1].replace("''", "'"))
        elif match[1] is not None:
            field = _letter(match[1], len(part))
            if field is None:
                return None
            parts.append(field)
        else:
            parts.append(part)
    return tuple(parts) if position == len(text) else None


# -- the table ---------------------------------------------------------------------------------

_ALL = [
    # the message and the device
    Function("deviceName", 0, 0, _device_name, reads_message=True),
    Function("productKey", 0, 0, _product_key, reads_message=True),
    Function("clientid", 0, 0, _client_id, reads_message=True),
    Function("topic", 0, 1, _topic, reads_message=True),
    Function("timestamp", 0, 1, _timestamp, reads_message=True),
    Function("timestamp_utc", 0, 1, _timestamp, reads_message=True),
    Function("attribute", 1, 1, _attribute, reads_message=True),
    Function("latest", 1, 1, _latest, reads_message=True),
    Function("newuuid", 0, 0, _new_uuid, constant=False),
    # numbers
    Function("abs", 1, 1, _abs),
    Function("round", 1, 1, _rounded(_half_away_from_zero)),
    Function("floor", 1, 1, _rounded(math.floor)),
    Function("ceil", 1, 1, _rounded(math.ceil)),
    Function("mod", 2, 2, remainder),
    Function("power", 2, 2, _power),
    Function("nanvl", 2, 2, _nanvl),
    # strings and collections
    Function("concat", 0, 255, _concat),
    Function("lower", 1, 1, _text_function(str.lower)),
    Function("upper", 1, 1, _text_function(str.upper)),
    Function("substring", 2, 3, _substring),
    Function("startswith", 2, 2, _two_texts(str.startswith)),
    Function("endswith", 2, 2, _two_texts(str.endswith)),
    Function("replace", 3, 3, _replace),
    Function("regexp_matches", 2, 2, _regexp_matches),
    Function("length", 1, 1, _length),
    Function("get", 2, 2, get_item),
    Function("isNull", 1, 1, _is_null),
    Function("isUndefined", 1, 1, _is_undefined),
    # dates
    Function("format_date", 2, 3, _format_date),
]

FUNCTIONS: dict[str, Function] = {function.name.lower(): function for function in _ALL}
"""Every function, by its name in lower case (a rule may write a name in any case)."""
