"""A parsed rule as data: the ``Rule`` and the nodes of its expressions.

``sql.parse`` builds them, ``compile`` turns them into closures, ``references`` reads them.
Every node keeps its ``span``, the offsets of its text in the rule, so that a rule that did not
run can name the condition that stopped it in the user's own words (``Rule.text_of``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

from hongshan.mqtt.topics import topic_matches

Span: TypeAlias = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: number, string, true, false, null (constant parts of expressions are folded
    into one)."""

    value: Any
    span: Span


@dataclass(frozen=True, slots=True)
class Path:
    """A field of the payload: ``items.Temperature.value`` is ``("items", "Temperature",
    "value")``, ``a.b[0]`` is ``("a", "b", 0)``."""

    steps: tuple[str | int, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Member:
    """``base.name`` on something other than a field (``get(e, 0).v``)."""

    base: Node
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    """``base[index]`` with a computed index."""

    base: Node
    index: Node
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; ``name`` is the function's key in ``functions.FUNCTIONS``."""

    name: str
    args: tuple[Node, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Negative:
    """Unary minus."""

    operand: Node
    span: Span


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """``+ - * / %``."""

    op: str
    left: Node
    right: Node
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    """``= <> < <= > >=`` (``!=`` is read as ``<>``)."""

    op: str
    left: Node
    right: Node
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    span: Span


@dataclass(frozen=True, slots=True)
class In:
    """``subject [NOT] IN (a, b, …)`` (``options``) or ``subject [NOT] IN array``
    (``collection``: a field, a call or an array literal)."""

    subject: Node
    options: tuple[Node, ...] | None
    collection: Node | None
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Between:
    subject: Node
    low: Node
    high: Node
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Like:
    subject: Node
    pattern: Node
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class IsNull:
    subject: Node
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Case:
    """``CASE [subject] WHEN w THEN t … [ELSE default] END``: with a subject, each ``w`` is a
    value compared with it; without, a condition."""

    subject: Node | None
    whens: tuple[tuple[Node, Node], ...]
    default: Node | None
    span: Span


@dataclass(frozen=True, slots=True)
class ArrayOf:
    """An array literal ``[a, b]``."""

    items: tuple[Node, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ObjectOf:
    """An object literal ``{'k': v}``."""

    pairs: tuple[tuple[str, Node], ...]
    span: Span


Node: TypeAlias = (
    Literal
    | Path
    | Member
    | Index
    | Call
    | Negative
    | Arithmetic
    | Compare
    | And
    | Or
    | Not
    | In
    | Between
    | Like
    | IsNull
    | Case
    | ArrayOf
    | ObjectOf
)

# the nodes whose value is a truth value (True, False or Undefined) by construction
CONDITIONS = (Compare, And, Or, Not, In, Between, Like, IsNull)


@dataclass(frozen=True, slots=True)
class SelectAll:
    """``*``: the payload's fields."""

    span: Span


@dataclass(frozen=True, slots=True)
class Selected:
    """``expr [AS key]``; ``key`` is the output's field, a path when the alias has dots."""

    expr: Node
    key: tuple[str, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule as written: its text, what it selects, the MQTT topic filter of its FROM and
    its WHERE condition (None: every message matching the filter)."""

    text: str
    select: tuple[SelectAll | Selected, ...]
    topic_filter: str
    where: Node | None

    def text_of(self, node: Node) -> str:
        """The node as the rule writes it."""
        start, end = node.span
        return self.text[start:end]

    def listens_to(self, topic: str) -> bool:
        """Whether a message on ``topic`` is one for this rule (its FROM filter matches)."""
        return topic_matches(self.topic_filter, topic)


def children(node: Node) -> Iterator[Node]:
    """The nodes directly inside ``node``."""
    match node:
        case Member(base=base) | Negative(operand=base) | Not(operand=base):
            yield base
        case Index(base=base, index=index):
            yield base
            yield index
        case Call(args=items) | And(parts=items) | Or(parts=items) | ArrayOf(items=items):
            yield from items
        case Arithmetic(left=left, right=right) | Compare(left=left, right=right):
            yield left
            yield right
        case In(subject=subject, options=options, collection=collection):
            yield subject
            yield from options or ()
            if collection is not None:
                yield collection
        case Between(subject=subject, low=low, high=high):
            yield from (subject, low, high)
        case Like(subject=subject, pattern=pattern):
            yield subject
            yield pattern
        case IsNull(subject=subject):
            yield subject
        case Case(subject=subject, whens=whens, default=default):
            if subject is not None:
                yield subject
            for when, then in whens:
                yield when
                yield then
            if default is not None:
                yield default
        case ObjectOf(pairs=pairs):
            for _, value in pairs:
                yield value


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node inside it (iteratively: the depth is the parser's to bound)."""
    waiting = [node]
    while waiting:
        current = waiting.pop()
        yield current
        waiting.extend(children(current))
