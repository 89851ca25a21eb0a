"""Helpers of the rule tests: run a rule's text on a payload, evaluate one expression."""

from __future__ import annotations

from typing import Any

from hongshan.messages import DeviceRef
from hongshan.rules.compile import CompiledRule, NotRun, compile
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse
from hongshan.rules.values import UNDEFINED

TOPIC = "topic/subtopic"


def message(payload: Any, topic: str = TOPIC, **fields: Any) -> RuleInput:
    return RuleInput(topic=topic, payload=payload, **fields)


def compiled(text: str) -> CompiledRule:
    return compile(parse(text))


def run(text: str, payload: Any, **fields: Any) -> dict[str, Any] | None:
    """The rule's output on ``payload``, checking that ``why_not`` agrees with ``run``."""
    rule = compiled(text)
    one = message(payload, **fields)
    out = rule.run(one)
    assert (out is None) == (rule.why_not(one) is not None)
    assert rule.holds(one) == (out is not None)
    return out


def why_not(text: str, payload: Any, **fields: Any) -> NotRun | None:
    return compiled(text).why_not(message(payload, **fields))


def value(expression: str, payload: Any = None, **fields: Any) -> Any:
    """What ``expression`` gives on ``payload``: ``UNDEFINED`` when the SELECT leaves it out."""
    out = run(f"SELECT {expression} AS v FROM '#'", {} if payload is None else payload, **fields)
    assert out is not None
    return out.get("v", UNDEFINED)


def holds(condition: str, payload: Any = None, **fields: Any) -> bool:
    """Whether a WHERE of ``condition`` lets the rule run."""
    out = run(f"SELECT * FROM '#' WHERE {condition}", {} if payload is None else payload, **fields)
    return out is not None


def condition(text: str, payload: Any = None) -> Any:
    """A condition's own value, True, False or ``UNDEFINED``, read with ``isUndefined`` and
    ``CASE`` so that the three are told apart."""
    found = value(
        f"CASE WHEN isUndefined({text}) THEN 'undefined' WHEN {text} THEN 'true' ELSE 'false' END",
        payload,
    )
    return {"true": True, "false": False, "undefined": UNDEFINED}[found]


LAMP = DeviceRef("a1HHrkmDmNt", "TestDevice1")
