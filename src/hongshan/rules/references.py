"""What a rule reads, and a rule checked against its product's thing model.

A rule on Alibaba's property-post topic (its FROM ends with ``thing/event/property/post``)
reads the rules engine's *thing-model data*, not the device's Alink message::

    {"iotId": "...", "productKey": "a1...", "deviceName": "lamp-1", "deviceType": "...",
     "gmtCreate": 1564569974224, "items": {"Power": {"value": "on", "time": 1564569974229}}}

so a property is ``items.<identifier>.value`` (and its time ``items.<identifier>.time``). On
any other topic the payload is the device's own JSON, whose fields no model describes.
"""

from __future__ import annotations

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

PROPERTY_POST_FIELDS = frozenset(
    {
        "iotId",
        "requestId",
        "productKey",
        "deviceName",
        "deviceType",
        "gmtCreate",
        "items",
        "checkFailedData",
    }
)
"""The fields of the thing-model data of a property post, as Alibaba's rules engine gives it."""

_PROPERTY_POST = ["thing", "event", "property", "post"]


class RuleRefused(HongshanError):
    """A rule that names what its product's thing model does not have: ``name`` is the
    property (or field) it names. Answered as HTTP 400."""

    http_status = 400

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def reads_property_posts(rule: Rule) -> bool:
    """Whether the rule's FROM is Alibaba's property-post topic (``/sys/{productKey}/
    {deviceName}/thing/event/property/post``, with wildcards or a shorter prefix), whose
    payload is the thing-model data."""
    return rule.topic_filter.split("/")[-4:] == _PROPERTY_POST


def references(rule: Rule) -> set[str]:
    """The payload fields the rule reads: each path's first name (``temperature`` of
    ``temperature > 38``), but ``items.<identifier>`` on the property-post topic
    (``items.Temperature`` of ``items.Temperature.value``); ``*`` for ``SELECT *``."""
    thing_data = reads_property_posts(rule)
    found: set[str] = set()
    for steps in _paths(rule):
        if thing_data and steps[0] == "items" and len(steps) > 1 and isinstance(steps[1], str):
            found.add(f"items.{steps[1]}")
        elif isinstance(steps[0], str):
            found.add(steps[0])
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


def properties(rule: Rule) -> set[str]:
    """The identifiers of the thing model's properties the rule names: ``items.<identifier>``
    on the property-post topic, and every ``latest('<identifier>')``."""
    named = {
        reference.removeprefix("items.")
        for reference in references(rule)
        if reference.startswith("items.") and reads_property_posts(rule)
    }
    for node in (node for root in _roots(rule) for node in walk(root)):
        if isinstance(node, Call) and node.name == "latest":
            argument = node.args[0]
            if isinstance(argument, Literal) and type(argument.value) is str:
                named.add(argument.value)
    return named


def check_against(rule: Rule, model: ThingModel) -> None:
    """Refuse (``RuleRefused``) a rule that names a property the model lacks, or, on the
    property-post topic, reads a field the thing-model data does not have (a property read as
    ``Temperature`` rather than ``items.Temperature.value``)."""
    known = model.property_map
    for identifier in sorted(properties(rule)):
        if identifier not in known:
            raise RuleRefused(
                f"the rule reads property {identifier!r}, which the product's thing model "
                "does not have",
                identifier,
            )
    if not reads_property_posts(rule):
        return
    for reference in sorted(references(rule)):
        field = reference.partition(".")[0]
        if field == "*" or field in PROPERTY_POST_FIELDS:
            continue
        hint = f": a property is read as items.{field}.value" if field in known else " nor property"
        raise RuleRefused(
            f"the rule reads {field!r}, which a property post has no field{hint}", field
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
