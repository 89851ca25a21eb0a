"""What a rule reads, and a rule checked against its product's thing model.

The payload a rule reads is its source's: the device's own JSON on a client's topic, or what a
source of the platform presents (the ``$things`` streams keep property values under
``values``; the Alink dialect's Alibaba rules-engine data under ``items``). So this module says
which fields a rule reads, and refuses properties the model lacks where the source says
properties are (``check_against(rule, model, under=...)``); what else a source's payload holds
is the source's to check.
"""

from __future__ import annotations

from collections.abc import Iterable

from hongshan.errors import HongshanError
from hongshan.rules.tree import (
    Call,
    Index,
    Literal,
    Member,
    Node,
    Path,
    Rule,
    SelectAll,
    Selected,
    children,
    walk,
)
from hongshan.things.tsl import ThingModel


class RuleRefused(HongshanError):
    """A rule that names what its product's thing model does not have: ``name`` is the
    property (or field) it names. Answered as HTTP 400."""

    http_status = 400

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def references(rule: Rule) -> set[str]:
    """The payload fields the rule reads: each path's first name (``temperature`` of
    ``temperature > 38``, ``items`` of ``items.Power.value``); ``*`` for ``SELECT *``."""
    found = {steps[0] for steps in _paths(rule) if isinstance(steps[0], str)}
    if any(isinstance(item, SelectAll) for item in rule.select):
        found.add("*")
    return found


def fields_under(rule: Rule, field: str) -> set[str]:
    """The names the rule reads inside the payload's object ``field``: ``{"Power"}`` for
    ``values.Power`` and ``get(values, 'Power')`` when ``field`` is ``values`` (a source
    whose payload keeps property values by identifier checks them against the model)."""
    return {
        steps[1]
        for steps in _paths(rule)
        if steps[0] == field and len(steps) > 1 and isinstance(steps[1], str)
    }


def latest_properties(rule: Rule) -> set[str]:
    """The properties the rule reads with ``latest('<identifier>')``."""
    named: set[str] = set()
    for node in (node for root in _roots(rule) for node in walk(root)):
        if isinstance(node, Call) and node.name == "latest":
            argument = node.args[0]
            if isinstance(argument, Literal) and type(argument.value) is str:
                named.add(argument.value)
    return named


def check_against(rule: Rule, model: ThingModel, *, under: Iterable[str] = ()) -> None:
    """Refuse (``RuleRefused``) a rule that names a property the model lacks: in
    ``latest('<identifier>')``, or inside the payload's objects ``under`` (the fields where
    the rule's source keeps property values by identifier)."""
    named = latest_properties(rule)
    for field in under:
        named |= fields_under(rule, field)
    known = model.property_map
    for identifier in sorted(named):
        if identifier not in known:
            raise RuleRefused(
                f"the rule reads property {identifier!r}, which the product's thing model "
                "does not have",
                identifier,
            )


def _roots(rule: Rule) -> list[Node]:
    roots: list[Node] = [item.expr for item in rule.select if isinstance(item, Selected)]
    if rule.where is not None:
        roots.append(rule.where)
    return roots


def _paths(rule: Rule) -> list[tuple[str | int, ...]]:
    """Every field path the rule reads, as far as it is written out: ``a['b']``, ``a.b`` and
    ``get(a, 'b')`` all read ``a.b``."""
    found: list[tuple[str | int, ...]] = []
    waiting = _roots(rule)
    while waiting:
        node = waiting.pop()
        steps = _steps(node)
        if steps is not None:
            found.append(steps)
            # (what a path's index or get's key computes is read too)
            waiting.extend(_beside_path(node))
            continue
        waiting.extend(children(node))
    return found


def _steps(node: Node) -> tuple[str | int, ...] | None:
    """The field path ``node`` reads, if it is one: a path, or a path extended by a member, a
    constant index or a ``get`` with a constant key."""
    match node:
        case Path(steps=steps):
            return steps
        case Member(base=base, name=name):
            inner = _steps(base)
            return None if inner is None else (*inner, name)
        case Index(base=base, index=Literal(value=key)) if type(key) in (str, int):
            inner = _steps(base)
            return None if inner is None else (*inner, key)
        case Call(name="get", args=(base, Literal(value=key))) if type(key) in (str, int):
            inner = _steps(base)
            return None if inner is None else (*inner, key)
        case Index(base=base):
            return _steps(base)
    return None


def _beside_path(node: Node) -> list[Node]:
    """The parts of a path-reading node that are not the path: a computed index."""
    if isinstance(node, Index) and not isinstance(node.index, Literal):
        return [node.index, *_beside_path(node.base)]
    if isinstance(node, (Index, Member)):
        return _beside_path(node.base)
    if isinstance(node, Call):
        return _beside_path(node.args[0])
    return []
