"""The closures a compiled rule is made of: each takes the message and answers a value.

``compile`` puts them together from a rule's tree; each here is one shape of node, some in two
versions (a path of up to three names, a field compared with a constant number) because they
are what most WHEREs are made of and every message of a rule's topics meets them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeAlias, cast

from hongshan.rules.functions import regular_expression
from hongshan.rules.message import RuleInput
from hongshan.rules.values import UNDEFINED, order, same, to_string

Evaluator: TypeAlias = Callable[[RuleInput], Any]


def constant(value: Any) -> Evaluator:
    return lambda message: value


def path(steps: tuple[str | int, ...]) -> Evaluator:
    """The field at ``steps`` in the payload, or Undefined where one is missing (or is not
    an object, or an array, as the step needs)."""
    if all(type(step) is str for step in steps) and len(steps) <= 3:
        return _names(*cast(tuple[str, ...], steps))

    def read(message: RuleInput) -> Any:
        value = message.payload
        for step in steps:
            if isinstance(step, str):
                if type(value) is not dict:
                    return UNDEFINED
                value = value.get(step, UNDEFINED)
            elif type(value) is list and 0 <= step < len(value):
                value = value[step]
            else:
                return UNDEFINED
        return value

    return read


def _names(first: str, second: str | None = None, third: str | None = None) -> Evaluator:
    # (unrolled: the path of a thing model's value, items.<id>.value, is three names)
    if second is None:

        def one(message: RuleInput) -> Any:
            payload = message.payload
            return payload.get(first, UNDEFINED) if type(payload) is dict else UNDEFINED

        return one
    if third is None:

        def two(message: RuleInput) -> Any:
            value = message.payload
            if type(value) is dict:
                value = value.get(first)
                if type(value) is dict:
                    return value.get(second, UNDEFINED)
            return UNDEFINED

        return two

    def three(message: RuleInput) -> Any:
        value = message.payload
        if type(value) is dict:
            value = value.get(first)
            if type(value) is dict:
                value = value.get(second)
                if type(value) is dict:
                    return value.get(third, UNDEFINED)
        return UNDEFINED

    return three


def unary(function: Callable[[Any], Any], operand: Evaluator) -> Evaluator:
    return lambda message: function(operand(message))


def binary(function: Callable[[Any, Any], Any], left: Evaluator, right: Evaluator) -> Evaluator:
    return lambda message: function(left(message), right(message))


def order_with_number(test: Callable[[Any, Any], bool], left: Evaluator, number: Any) -> Evaluator:
    def compare(message: RuleInput) -> Any:
        value = left(message)
        kind = type(value)
        if kind is int or kind is float:
            return test(value, number)
        result = order(value, number)
        return UNDEFINED if result is UNDEFINED else test(result, 0)

    return compare


def ordered(test: Callable[[Any, Any], bool], left: Evaluator, right: Evaluator) -> Evaluator:
    def compare(message: RuleInput) -> Any:
        result = order(left(message), right(message))
        return UNDEFINED if result is UNDEFINED else test(result, 0)

    return compare


def every(parts: list[Evaluator]) -> Evaluator:
    """AND, three-valued as SQL's: false if any part is false, true if all are true,
    otherwise Undefined."""
    if len(parts) == 2:
        first, second = parts

        def both(message: RuleInput) -> Any:
            a = first(message)
            if a is False:
                return False
            b = second(message)
            if b is False:
                return False
            return True if (a is True and b is True) else UNDEFINED

        return both

    def all_hold(message: RuleInput) -> Any:
        result: Any = True
        for part in parts:
            value = part(message)
            if value is False:
                return False
            if value is not True:
                result = UNDEFINED
        return result

    return all_hold


def some(parts: list[Evaluator]) -> Evaluator:
    """OR, three-valued: true if any part is true, false if all are false, otherwise
    Undefined."""

    def any_holds(message: RuleInput) -> Any:
        result: Any = False
        for part in parts:
            value = part(message)
            if value is True:
                return True
            if value is not False:
                result = UNDEFINED
        return result

    return any_holds


def negation(inner: Evaluator) -> Evaluator:
    def negated(message: RuleInput) -> Any:
        value = inner(message)
        if value is True:
            return False
        if value is False:
            return True
        return UNDEFINED

    return negated


def is_null(subject: Evaluator, negated: bool) -> Evaluator:
    # a missing field IS NULL too: in a JSON document both say "no value here"
    def null(message: RuleInput) -> bool:
        value = subject(message)
        return (value is None or value is UNDEFINED) is not negated

    return null


def in_array(value: Any, candidates: Any) -> Any:
    if value is UNDEFINED or type(candidates) is not list:
        return UNDEFINED
    undefined = False
    for candidate in candidates:
        if candidate is UNDEFINED:
            undefined = True
        elif same(value, candidate):
            return True
    return UNDEFINED if undefined else False


def in_options(subject: Evaluator, options: list[Evaluator]) -> Evaluator:
    return lambda message: in_array(subject(message), [option(message) for option in options])


def in_constants(subject: Evaluator, values: tuple[Any, ...]) -> Evaluator:
    if values and all(type(value) is str for value in values):
        strings = frozenset(values)

        def in_strings(message: RuleInput) -> Any:
            value = subject(message)
            if value is UNDEFINED:
                return UNDEFINED
            return type(value) is str and value in strings

        return in_strings
    candidates = list(values)
    return lambda message: in_array(subject(message), candidates)


def like_pattern(pattern: Any) -> re.Pattern[str] | None:
    """SQL's LIKE pattern as a regular expression: ``%`` any run of characters, ``_`` one,
    ``\\`` makes the next one literal. None for no pattern (a null)."""
    if type(pattern) is not str:
        return None
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))
    return regular_expression("(?s:" + "".join(parts) + r")\Z")


def like_match(value: Any, pattern: re.Pattern[str] | None) -> Any:
    kind = type(value)
    if pattern is None or kind is list or kind is dict:
        return UNDEFINED
    text = to_string(value)
    return UNDEFINED if text is UNDEFINED else pattern.match(text) is not None


def array(items: list[Evaluator]) -> Evaluator:
    return lambda message: [
        value for value in (item(message) for item in items) if value is not UNDEFINED
    ]


def object_of(pairs: list[tuple[str, Evaluator]]) -> Evaluator:
    def build(message: RuleInput) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, evaluate in pairs:
            value = evaluate(message)
            if value is not UNDEFINED:
                out[key] = value
        return out

    return build
