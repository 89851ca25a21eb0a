"""The WHERE index answers exactly what each rule's own WHERE answers, for any value a
payload may carry, and rules are traced as before: their plain non-runs found among the
last messages of their FROM."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hongshan.rules.compile import compile
from hongshan.rules.message import RuleInput
from hongshan.rules.sql import parse
from hongshan.rules.where_index import WhereIndex, key_of
from hongshan.services.rules.running import TRACE_LENGTH, Listeners, RunningRule

FROM = 'FROM "t/#"'

CONSTANTS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.0, 0.5, 2.0, 1e308]),
    st.sampled_from(["'a'", "'b'", "'1'", "true", "null"]),
)
VALUES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.0, -0.0, 0.5, 2.0, math.nan, math.inf, -math.inf, 1e308]),
    st.sampled_from(["a", "b", "1", "", True, False, None, [1], {"x": 1}]),
)


@st.composite
def wheres(draw: st.DrawFn) -> str:
    """A WHERE such as a town writes: one comparison, an AND with one, an OR, a negation."""
    field = draw(st.sampled_from(["x", "y", "a.b"]))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "=", "<>"]))
    constant = draw(CONSTANTS)
    comparison = f"{constant} {op} {field}" if draw(st.booleans()) else f"{field} {op} {constant}"
    shape = draw(st.sampled_from(["one", "and", "and-late", "or", "not", "none"]))
    other = f"y {draw(st.sampled_from(['>', '=', '<']))} {draw(st.integers(-2, 2))}"
    return {
        "one": f" WHERE {comparison}",
        "and": f" WHERE {comparison} AND {other}",
        "and-late": f" WHERE upper(topic(1)) = 'T' AND {comparison}",
        "or": f" WHERE {comparison} OR {other}",
        "not": f" WHERE NOT {comparison}",
        "none": "",
    }[shape]


def _payload(x: Any, y: Any, b: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for name, value in (("x", x), ("y", y)):
        if value != "missing":
            payload[name] = value
    payload["a"] = {"b": b}
    return payload


@settings(max_examples=300, deadline=None)
@given(
    st.lists(wheres(), min_size=1, max_size=12),
    st.lists(st.tuples(VALUES | st.just("missing"), VALUES, VALUES), min_size=1, max_size=8),
)
def test_the_index_answers_what_each_where_answers(where: list[str], payloads: list[Any]) -> None:
    index: WhereIndex[int] = WhereIndex()
    compiled = [compile(parse(f"SELECT * {FROM}{text}")) for text in where]
    for key, rule in enumerate(compiled):
        index.add(key, rule)
    for x, y, b in payloads:
        message = RuleInput(topic="t/1", payload=_payload(x, y, b))
        expected = [key for key, rule in enumerate(compiled) if rule.holds(message)]
        assert index.holding(message) == expected, (where, message.payload)


def test_every_operator_constant_and_value_is_answered_as_the_where_does() -> None:
    constants = ["-1", "0", "0.5", "2", "'a'", "'1'", "true", "null"]
    values = [-1, 0, -0.0, 0.5, 2, 3.5, math.nan, math.inf, -math.inf, "a", "1", "", True]
    values += [False, None, [0], {"a": 1}, "missing"]
    rules = []
    for op in ["<", "<=", ">", ">=", "=", "<>"]:
        for constant in constants:
            rules += [f"x {op} {constant}", f"{constant} {op} x", f"x {op} {constant} AND y"]
    index: WhereIndex[int] = WhereIndex()
    compiled = [compile(parse(f"SELECT * {FROM} WHERE {where}")) for where in rules]
    for key, rule in enumerate(compiled):
        index.add(key, rule)
    for value in values:
        for y in (True, False):
            message = RuleInput(topic="t/1", payload=_payload(value, y, None))
            expected = [key for key, rule in enumerate(compiled) if rule.holds(message)]
            assert index.holding(message) == expected, value


def test_removed_rules_are_no_longer_answered_and_the_rest_keep_their_order() -> None:
    index: WhereIndex[str] = WhereIndex()
    for key, where in [("a", "x > 1"), ("b", "x > 0"), ("c", "x = 5"), ("d", "x >= 5 AND y")]:
        index.add(key, compile(parse(f"SELECT * {FROM} WHERE {where}")))
    five = RuleInput(topic="t", payload={"x": 5, "y": True})
    assert index.holding(five) == ["a", "b", "c", "d"]
    index.remove("a")
    index.remove("c")
    index.add("a", compile(parse(f"SELECT * {FROM} WHERE x < 9")))  # (again: last now)
    assert index.holding(five) == ["b", "d", "a"]
    for key in "abd":
        index.remove(key)
    assert len(index) == 0 and index.holding(five) == []


def test_a_where_is_indexed_by_its_comparison_with_a_constant_and_only_then() -> None:
    def key(where: str) -> Any:
        return key_of(parse(f"SELECT * {FROM} WHERE {where}").where)

    assert key("items.T.value > 30") is not None
    assert key("30 < items.T.value") == key("items.T.value > 30")  # (turned around)
    assert key("deviceName() = 'x' AND v >= 2.5").op == ">="  # (an AND's first comparison)
    for unindexed in ["v <> 3", "v > w", "v = true", "v > 1 OR w > 1", "NOT v > 1", "v > 'a'"]:
        assert key(unindexed) is None, unindexed


def _rule(rule_id: int, where: str, per_second: float = 1000.0) -> RunningRule:
    return RunningRule(
        rule_id,
        f"r{rule_id}",
        compile(parse(f"SELECT x {FROM} WHERE {where}")),
        actions=[],
        error_action=None,
        max_per_second=per_second,
        now=0.0,
    )


def test_counters_and_non_runs_come_from_the_listeners_messages() -> None:
    listeners = Listeners()
    hot, limited = _rule(1, "x > 10"), _rule(2, "x > 0", per_second=1.0)
    listeners.add(hot)
    listeners.add(limited)
    fired = []
    for n, x in enumerate([20, 5, 30, 1, 2]):
        message = RuleInput(topic="t/1", payload={"x": x})
        fired.append([rule.id for rule, _ in listeners.hear(message, 1000 + n, now=0.0)])
    assert fired == [[1, 2], [], [1], [], []]  # (rule 2: one token, then limited)
    late = _rule(3, "x < 0")
    listeners.add(late)  # (counted from its joining)
    listeners.hear(RuleInput(topic="t/1", payload={"x": 7}), 1005, now=0.0)

    trace = hot.trace()
    assert (trace.counters.matched, trace.counters.fired, trace.counters.not_run) == (6, 0, 4)
    # (fired counts what the engine ran: here nobody did; the non-runs are the WHERE's)
    assert [stop.at for stop in trace.non_runs] == [1005, 1004, 1003, 1001]
    assert trace.non_runs[0].why == "x > 10: false"
    limits = limited.trace()
    assert limits.counters.limited == 5 and limits.counters.not_run == 0
    assert {stop.reason for stop in limits.non_runs} == {"rate_limit"}
    assert late.trace().counters.matched == 1 and late.trace().non_runs[0].at == 1005


def test_a_rule_keeps_its_last_non_runs_however_many_rules_share_its_from() -> None:
    listeners = Listeners()
    rules = [_rule(n, f"x > {n}") for n in range(100)]
    for rule in rules:
        listeners.add(rule)
    for n in range(TRACE_LENGTH * 3):
        listeners.hear(RuleInput(topic="t/1", payload={"x": -1}), n, now=0.0)
    for rule in rules:
        trace = rule.trace()
        assert trace.counters.not_run == TRACE_LENGTH * 3
        assert [stop.at for stop in trace.non_runs] == list(
            range(TRACE_LENGTH * 3 - 1, TRACE_LENGTH * 2 - 1, -1)
        )


def test_messages_handed_to_a_rule_alone_are_counted_and_traced_in_their_order() -> None:
    listeners = Listeners()
    rule = _rule(1, "x > 10")
    listeners.add(rule)
    listeners.hear(RuleInput(topic="t/1", payload={"x": 1}), 1, now=0.0)  # (its WHERE: no)
    assert rule.heard_alone(RuleInput(topic="$rules/r1", payload={"x": 2}), 2, 0.0) is None
    assert rule.heard_alone(RuleInput(topic="$rules/r1", payload={"x": 20}), 3, 0.0) == {"x": 20}
    listeners.hear(RuleInput(topic="t/1", payload={"x": 3}), 4, now=0.0)
    rule.heard_alone(RuleInput(topic="$rules/r1", payload={"x": 30}), 5, 0.0, too_deep=True)
    trace = rule.trace()
    assert (trace.counters.matched, trace.counters.not_run, trace.counters.looped) == (5, 3, 1)
    assert [(stop.at, stop.reason) for stop in trace.non_runs] == [
        (5, "depth_limit"),
        (4, "where"),
        (2, "where"),
        (1, "where"),
    ]
