"""``WhereIndex``: which of many rules' WHEREs hold for a message, without evaluating each.

A town's rules on one stream mostly test one field against a constant: ``items.Temperature.value
> 30``, ``values.PM25 >= 75``, ``status = 'offline'``. Evaluated one closure per rule, 100 such
rules cost 100 reads of the same field and 100 comparisons a message. Indexed, the field is read
once per distinct path and the rules whose comparison holds are found by bisection in their
sorted thresholds (``<``, ``<=``, ``>``, ``>=`` with a number) or by one lookup (``=`` with a
number or a string): the cost grows with the number of distinct paths and the rules that hold,
not with the rules that do not — as a Rete network's alpha memory or a publish/subscribe
system's predicate index.

A rule is indexed by its WHERE's comparison of a payload path with a constant, or, for a WHERE
that is an AND, by the first such part (the key): where the key is false the AND is false; where
it holds the whole WHERE is evaluated. Every other rule (OR, functions, no WHERE…) is evaluated
as it is. The answer is the same as each rule's own WHERE, exactly: a value the index cannot
order as the closures do (a boolean, a string against a number, NaN, a missing field: SQL's
three-valued logic) has every rule of that path evaluated by its closure.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hongshan.rules.compile import CompiledRule
from hongshan.rules.evaluators import Evaluator, path
from hongshan.rules.message import RuleInput
from hongshan.rules.tree import And, Compare, Literal, Node, Path

K = TypeVar("K", bound=Hashable)

_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}
_ORDERED = ("<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class _Key:
    """A rule's indexed comparison: ``path op constant``."""

    steps: tuple[str | int, ...]
    op: str
    constant: Any


def key_of(where: Node | None) -> _Key | None:
    """The comparison a WHERE is indexed by, or None when it has none."""
    if isinstance(where, And):
        for part in where.parts:
            found = _comparison(part)
            if found is not None:
                return found
        return None
    return _comparison(where)


def _comparison(node: Node | None) -> _Key | None:
    if not isinstance(node, Compare) or node.op not in _FLIPPED:
        return None
    if isinstance(node.left, Path) and isinstance(node.right, Literal):
        steps, op, constant = node.left.steps, node.op, node.right.value
    elif isinstance(node.right, Path) and isinstance(node.left, Literal):
        steps, op, constant = node.right.steps, _FLIPPED[node.op], node.left.value
    else:
        return None
    kind = type(constant)
    if kind is float and math.isnan(constant):
        return None
    if op in _ORDERED and kind in (int, float):
        return _Key(steps, op, constant)
    if op == "=" and kind in (int, float, str):
        return _Key(steps, op, constant)
    return None


@dataclass(slots=True)
class _Entry(Generic[K]):
    key: K
    order: int  # when it was added: the answer lists rules in that order
    whole: Evaluator | None  # the WHERE, where more than the key must hold (an AND)
    where: Evaluator  # the WHERE itself, for values the index cannot order


@dataclass(slots=True)
class _Field(Generic[K]):
    """The rules keyed on one path: by operator, their constants sorted (or, for ``=``, by
    value)."""

    read: Evaluator
    sorted: dict[str, list[tuple[float, int, _Entry[K]]]] = field(default_factory=dict)
    equal: dict[Any, list[_Entry[K]]] = field(default_factory=dict)
    entries: dict[K, _Entry[K]] = field(default_factory=dict)

    def holding(self, message: RuleInput, found: list[_Entry[K]]) -> None:
        value = self.read(message)
        kind = type(value)
        if kind is int or kind is float:
            if value != value:  # NaN: no ordering; let the closures say
                self._each(message, found)
                return
            for op, rules in self.sorted.items():
                self._ordered(op, rules, value, message, found)
            if self.equal:
                self._check(self.equal.get(value, ()), message, found)
            return
        if kind is str:
            if self.sorted:  # (a string against a number: the closures' own rules)
                for rules in self.sorted.values():
                    for _, _, entry in rules:
                        if entry.where(message) is True:
                            found.append(entry)
            self._check(self.equal.get(value, ()), message, found)
            return
        self._each(message, found)

    def _ordered(
        self,
        op: str,
        rules: list[tuple[float, int, _Entry[K]]],
        value: float,
        message: RuleInput,
        found: list[_Entry[K]],
    ) -> None:
        # rules sorted by constant c: ``value > c`` holds for those with c < value, …
        probe = (value,)
        if op == ">":
            held = rules[: bisect.bisect_left(rules, probe)]
        elif op == ">=":
            held = rules[: bisect.bisect_left(rules, (value, math.inf))]
        elif op == "<":
            held = rules[bisect.bisect_left(rules, (value, math.inf)) :]
        else:  # "<="
            held = rules[bisect.bisect_left(rules, probe) :]
        self._check((entry for _, _, entry in held), message, found)

    @staticmethod
    def _check(entries: Any, message: RuleInput, found: list[_Entry[K]]) -> None:
        for entry in entries:
            if entry.whole is None or entry.whole(message) is True:
                found.append(entry)

    def _each(self, message: RuleInput, found: list[_Entry[K]]) -> None:
        for entry in self.entries.values():
            if entry.where(message) is True:
                found.append(entry)


class WhereIndex(Generic[K]):
    """Rules by key, each with its compiled WHERE; ``holding`` answers the keys of those whose
    WHERE holds for a message, in the order they were added. Owns the index and nothing of the
    rules but their WHEREs: never runs a SELECT, counts or traces."""

    def __init__(self) -> None:
        self._fields: dict[tuple[str | int, ...], _Field[K]] = {}
        self._plain: dict[K, _Entry[K]] = {}  # rules evaluated one by one
        self._where_of: dict[K, tuple[_Key | None, _Entry[K]]] = {}
        self._added = 0

    def __len__(self) -> int:
        return len(self._where_of)

    def add(self, key: K, compiled: CompiledRule) -> None:
        """Index ``compiled``'s WHERE under ``key`` (in place of one with that key)."""
        self.remove(key)
        self._added += 1
        where: Evaluator = compiled.where or _always
        indexed = key_of(compiled.rule.where)
        whole = None if isinstance(compiled.rule.where, Compare) else where
        entry = _Entry(key, self._added, whole, where)
        self._where_of[key] = (indexed, entry)
        if indexed is None:
            self._plain[key] = entry
            return
        place = self._fields.get(indexed.steps)
        if place is None:
            place = self._fields[indexed.steps] = _Field(path(indexed.steps))
        place.entries[key] = entry
        if indexed.op == "=":
            place.equal.setdefault(indexed.constant, []).append(entry)
        else:
            bisect.insort(
                place.sorted.setdefault(indexed.op, []),
                (indexed.constant, entry.order, entry),
                key=lambda item: item[:2],
            )

    def remove(self, key: K) -> None:
        known = self._where_of.pop(key, None)
        if known is None:
            return
        indexed, entry = known
        if indexed is None:
            del self._plain[key]
            return
        place = self._fields[indexed.steps]
        del place.entries[key]
        if indexed.op == "=":
            same = place.equal[indexed.constant]
            same.remove(entry)
            if not same:
                del place.equal[indexed.constant]
        else:
            rules = place.sorted[indexed.op]
            rules.remove((indexed.constant, entry.order, entry))
            if not rules:
                del place.sorted[indexed.op]
        if not place.entries:
            del self._fields[indexed.steps]

    def holding(self, message: RuleInput) -> list[K]:
        """The keys of the rules whose WHERE holds for ``message``, in the order added."""
        found: list[_Entry[K]] = []
        for place in self._fields.values():
            place.holding(message, found)
        for entry in self._plain.values():
            if entry.where(message) is True:
                found.append(entry)
        if len(found) > 1:
            found.sort(key=_order)
        return [entry.key for entry in found]


def _order(entry: _Entry[Any]) -> int:
    return entry.order


def _always(_message: RuleInput) -> Any:
    return True
