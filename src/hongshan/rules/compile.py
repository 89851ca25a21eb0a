"""``compile``: a parsed rule made into Python closures, and what running it answers.

Each node of the rule's tree becomes a closure of one argument, the ``RuleInput``
(``evaluators``); a node whose parts are all constants is evaluated once, here. Nothing is
``eval``'d: the closures are built from the tree's nodes, and the values they compute follow
``values`` and ``functions``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from hongshan.rules.evaluators import (
    Evaluator,
    array,
    binary,
    constant,
    every,
    in_array,
    in_constants,
    in_options,
    is_null,
    like_match,
    like_pattern,
    negation,
    object_of,
    order_with_number,
    ordered,
    path,
    some,
    unary,
)
from hongshan.rules.functions import FUNCTIONS, get_item
from hongshan.rules.message import RuleInput
from hongshan.rules.tree import (
    CONDITIONS,
    And,
    Arithmetic,
    ArrayOf,
    Between,
    Call,
    Case,
    Compare,
    In,
    Index,
    IsNull,
    Like,
    Literal,
    Member,
    Negative,
    Node,
    Not,
    ObjectOf,
    Or,
    Path,
    Rule,
    SelectAll,
    Selected,
    children,
)
from hongshan.rules.values import (
    UNDEFINED,
    add,
    divide,
    equals,
    multiply,
    negate,
    order,
    remainder,
    same,
    subtract,
    to_string,
    truth,
)

_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": divide,
    "%": remainder,
}
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class NotRun:
    """Why a rule did not run on a message: ``condition`` is the smallest part of its WHERE,
    as written, that did not hold (for ``a > 1 AND b < 2`` with ``b`` 5, ``b < 2``);
    ``undefined`` says it was neither true nor false (a field it reads is missing, or a value
    of a type it cannot compare)."""

    condition: str
    undefined: bool

    def __str__(self) -> str:
        if self.undefined:
            return f"{self.condition}: undefined (a value it reads is missing or not comparable)"
        return f"{self.condition}: false"


class CompiledRule:
    """A rule ready to run: ``run`` answers the SELECTed object for a message on which the
    WHERE holds, None otherwise; ``why_not`` says, when asked, which condition stopped it.

    It owns the closures made from one ``Rule`` and nothing else: it does not know which
    topics it is given messages from (``rule.listens_to``), keeps no trace of its runs, and
    never changes the message or its payload (a selected object or array is the payload's
    own, not a copy)."""

    __slots__ = ("_conditions", "_select", "_where", "rule")

    def __init__(
        self,
        rule: Rule,
        where: Evaluator | None,
        select: Callable[[RuleInput], dict[str, Any]],
        conditions: dict[int, Evaluator],
    ) -> None:
        self.rule = rule
        self._where = where
        self._select = select
        self._conditions = conditions

    @property
    def where(self) -> Evaluator | None:
        """The WHERE's closure (True, False or Undefined), None for a rule without one."""
        return self._where

    def select(self, message: RuleInput) -> dict[str, Any]:
        """The SELECTed object, whether or not the WHERE holds (a caller that asked it)."""
        return self._select(message)

    def holds(self, message: RuleInput) -> bool:
        """Whether the rule's WHERE holds for ``message`` (a rule without one always does)."""
        return self._where is None or self._where(message) is True

    def run(self, message: RuleInput) -> dict[str, Any] | None:
        """The SELECTed object if the WHERE holds, else None (ask ``why_not``)."""
        where = self._where
        if where is not None and where(message) is not True:
            return None
        return self._select(message)

    def why_not(self, message: RuleInput) -> NotRun | None:
        """Which condition stopped the rule on ``message``, or None if it would run. Costs a
        second evaluation of the WHERE: asked for a trace, not on every message."""
        node = self.rule.where
        if node is None:
            return None
        value = self._conditions[id(node)](message)
        if value is True:
            return None
        while isinstance(node, And):
            for part in node.parts:
                part_value = self._conditions[id(part)](message)
                if part_value is not True:
                    node, value = part, part_value
                    break
            else:  # (every part held, yet the AND did not: cannot happen)
                break
        return NotRun(self.rule.text_of(node), undefined=value is not False)


def compile(rule: Rule) -> CompiledRule:
    """``rule`` made into closures."""
    builder = _Closures()
    where = None if rule.where is None else builder.condition(rule.where)
    select = _select(rule, builder)
    return CompiledRule(rule, where, select, builder.conditions)


# -- select ------------------------------------------------------------------------------------


def _select(rule: Rule, builder: _Closures) -> Callable[[RuleInput], dict[str, Any]]:
    if len(rule.select) == 1 and isinstance(rule.select[0], SelectAll):
        return _everything
    parts: list[tuple[tuple[str, ...], Evaluator | None]] = []
    for item in rule.select:
        if isinstance(item, Selected):
            parts.append((item.key, builder.value(item.expr)))
        else:
            parts.append(((), None))

    def select(message: RuleInput) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, evaluate in parts:
            if evaluate is None:
                if type(message.payload) is dict:
                    out.update(message.payload)
                continue
            value = evaluate(message)
            if value is UNDEFINED:  # AWS: an Undefined value is left out of the object
                continue
            if len(key) == 1:
                out[key[0]] = value
            else:
                _put(out, key, value)
        return out

    return select


def _everything(message: RuleInput) -> dict[str, Any]:
    payload = message.payload
    return dict(payload) if type(payload) is dict else {}


def _put(out: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    """``AS a.b`` makes ``{"a": {"b": value}}``; an object already at ``a`` is copied before
    it gets ``b`` (it may be the payload's, which a rule never changes)."""
    here = out
    for name in key[:-1]:
        inner = here.get(name)
        inner = dict(inner) if type(inner) is dict else {}
        here[name] = inner
        here = inner
    here[key[-1]] = value


# -- expressions -------------------------------------------------------------------------------


class _Closures:
    """Makes the closures of one rule's nodes; keeps those of its conditions by node (``id``),
    for ``why_not``."""

    def __init__(self) -> None:
        self.conditions: dict[int, Evaluator] = {}

    def condition(self, node: Node) -> Evaluator:
        """A closure answering True, False or Undefined: the node's truth."""
        known = self.conditions.get(id(node))
        if known is not None:
            return known
        if isinstance(node, CONDITIONS):
            evaluate = self.value(node)
        else:
            inner = self.value(node)

            def evaluate(message: RuleInput) -> Any:
                return truth(inner(message))

        if isinstance(node, And):
            # why_not descends into an AND's parts: each needs its closure, even where the
            # AND was folded into a constant and did not build them
            for part in node.parts:
                self.condition(part)
        self.conditions[id(node)] = evaluate
        return evaluate

    def value(self, node: Node) -> Evaluator:
        """A closure answering the node's value."""
        if isinstance(node, Literal):
            return constant(node.value)
        if _is_constant(node):
            # (a node whose parts are constants reads nothing of the message)
            return constant(self._build(node)(cast(RuleInput, None)))
        return self._build(node)

    def _build(self, node: Node) -> Evaluator:
        match node:
            case Path(steps=steps):
                return path(steps)
            case Compare():
                return self._compare(node)
            case And(parts=parts):
                return every([self.condition(part) for part in parts])
            case Or(parts=parts):
                return some([self.condition(part) for part in parts])
            case Not(operand=operand):
                return negation(self.condition(operand))
            case Arithmetic(op=op, left=left, right=right):
                return binary(_ARITHMETIC[op], self.value(left), self.value(right))
            case Negative(operand=operand):
                return unary(negate, self.value(operand))
            case Call():
                return self._call(node)
            case In():
                return self._in(node)
            case Between():
                return self._between(node)
            case Like():
                return self._like(node)
            case IsNull(subject=subject, negated=negated):
                return is_null(self.value(subject), negated)
            case Case():
                return self._case(node)
            case Member(base=base, name=name):
                return binary(get_item, self.value(base), constant(name))
            case Index(base=base, index=index):
                return binary(get_item, self.value(base), self.value(index))
            case ArrayOf(items=items):
                return array([self.value(item) for item in items])
            case ObjectOf(pairs=pairs):
                return object_of([(key, self.value(value)) for key, value in pairs])
            case Literal(value=value):
                return constant(value)

    def _compare(self, node: Compare) -> Evaluator:
        left = self.value(node.left)
        if node.op in _ORDERINGS:
            test = _ORDERINGS[node.op]
            if isinstance(node.right, Literal) and type(node.right.value) in (int, float):
                return order_with_number(test, left, node.right.value)
            return ordered(test, left, self.value(node.right))
        right = self.value(node.right)
        if node.op == "=":
            return binary(equals, left, right)
        return negation(binary(equals, left, right))

    def _call(self, node: Call) -> Evaluator:
        function = FUNCTIONS[node.name]
        call = function.call
        args = [self.value(arg) for arg in node.args]
        if function.reads_message:
            if not args:
                return cast(Evaluator, call)
            if len(args) == 1:
                (only,) = args
                return lambda message: call(message, only(message))
            return lambda message: call(message, *[arg(message) for arg in args])
        if not args:
            return lambda message: call()
        if len(args) == 1:
            return unary(call, args[0])
        if len(args) == 2:
            return binary(call, args[0], args[1])
        return lambda message: call(*[arg(message) for arg in args])

    def _in(self, node: In) -> Evaluator:
        subject = self.value(node.subject)
        if node.options is None:
            assert node.collection is not None  # (the grammar gives one or the other)
            found = binary(in_array, subject, self.value(node.collection))
        elif all(isinstance(option, Literal) for option in node.options):
            values = tuple(cast(Literal, option).value for option in node.options)
            found = in_constants(subject, values)
        else:
            found = in_options(subject, [self.value(option) for option in node.options])
        return negation(found) if node.negated else found

    def _between(self, node: Between) -> Evaluator:
        subject = self.value(node.subject)
        low = self.value(node.low)
        high = self.value(node.high)

        def between(message: RuleInput) -> Any:
            value = subject(message)
            above = order(value, low(message))
            below = order(value, high(message))
            if above is UNDEFINED or below is UNDEFINED:
                return False if (above == -1 or below == 1) else UNDEFINED
            return above >= 0 and below <= 0

        return negation(between) if node.negated else between

    def _like(self, node: Like) -> Evaluator:
        subject = self.value(node.subject)
        if isinstance(node.pattern, Literal) and type(node.pattern.value) is str:
            compiled = like_pattern(node.pattern.value)
            matches = unary(lambda value: like_match(value, compiled), subject)
        else:
            matches = binary(
                lambda value, pattern: like_match(value, like_pattern(to_string(pattern))),
                subject,
                self.value(node.pattern),
            )
        return negation(matches) if node.negated else matches

    def _case(self, node: Case) -> Evaluator:
        default = constant(UNDEFINED) if node.default is None else self.value(node.default)
        if node.subject is None:
            tests = [(self.condition(when), self.value(then)) for when, then in node.whens]

            def searched(message: RuleInput) -> Any:
                for test, then in tests:
                    if test(message) is True:
                        return then(message)
                return default(message)

            return searched
        subject = self.value(node.subject)
        whens = [(self.value(when), self.value(then)) for when, then in node.whens]

        def simple(message: RuleInput) -> Any:
            value = subject(message)
            if value is UNDEFINED:  # AWS: "If v is Undefined, the result is Undefined"
                return UNDEFINED
            for when, then in whens:
                candidate = when(message)
                if candidate is not UNDEFINED and same(value, candidate):
                    return then(message)
            return default(message)

        return simple


def _is_constant(node: Node) -> bool:
    if isinstance(node, Literal):
        return True
    if isinstance(node, Path):
        return False
    if isinstance(node, Call):
        function = FUNCTIONS[node.name]
        if function.reads_message or not function.constant:
            return False
    return all(_is_constant(child) for child in children(node))
