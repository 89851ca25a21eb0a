"""Rules run on messages: the documented examples of Alibaba and AWS with their documented
output, and the semantics chosen where the two leave a choice (Undefined, null, mixed types,
integer division), each as a case."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rule_cases import LAMP, compiled, condition, holds, message, run, value, why_not

from hongshan.rules.values import UNDEFINED

# -- the documentation's examples, input and output as documented ------------------------------

AWS_PAYLOAD = {"color": "red", "temperature": 50}


@pytest.mark.parametrize(
    ("text", "payload", "output"),
    [
        # "AWS IoT SQL reference"
        (
            "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
            {"color": "red", "temperature": 100},
            {"rgb": "red"},
        ),
        # "SELECT clause"
        ("SELECT * FROM 'topic/subtopic'", AWS_PAYLOAD, AWS_PAYLOAD),
        ("SELECT color FROM 'topic/subtopic'", AWS_PAYLOAD, {"color": "red"}),
        ("SELECT color AS my_color FROM 'topic/subtopic'", AWS_PAYLOAD, {"my_color": "red"}),
        (
            "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
            AWS_PAYLOAD,
            {"my_color": "red", "fahrenheit": 50},
        ),
        (
            "SELECT *, 15 as speed FROM 'topic/subtopic'",
            AWS_PAYLOAD,
            {"color": "red", "temperature": 50, "speed": 15},
        ),
        (
            "SELECT color.red as red_value FROM 'topic/subtopic'",
            {"color": {"red": 255, "green": 0, "blue": 0}, "temperature": 50},
            {"red_value": 255},
        ),
        (
            "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color "
            "FROM 'topic/subtopic'",
            AWS_PAYLOAD,
            {"celsius": 10, "my_color": "RED"},
        ),
        # "WHERE clause": the rule is triggered, its actions not performed
        (
            "SELECT color AS my_color FROM 'topic/subtopic' "
            "WHERE temperature > 50 AND color <> 'red'",
            {"color": "red", "temperature": 40},
            None,
        ),
        # "Case statements"
        (
            "SELECT CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' "
            "WHEN 'red' THEN 'stop' ELSE 'you are not at a stop light' END as instructions "
            "FROM 'topic/subtopic'",
            {"color": "yellow"},
            {"instructions": "caution"},
        ),
        # "JSON extensions"
        (
            "SELECT foo.bar AS bar.baz FROM 'topic/subtopic'",
            {"foo": {"bar": "RED", "bar1": "GREEN", "bar2": "BLUE"}},
            {"bar": {"baz": "RED"}},
        ),
        (
            "SELECT * from 'iot/rules' WHERE "
            'get(get(get(mydata,"item2"),"0"),"my-key") = "myValue"',
            {"mydata": {"item2": {"0": {"my-key": "myValue"}}}},
            {"mydata": {"item2": {"0": {"my-key": "myValue"}}}},
        ),
        # "Literals"
        (
            "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long "
            "FROM 'topic/subtopic'",
            {"lat_long": [47.606, -122.332]},
            {"lat_long": {"latitude": 47.606, "longitude": -122.332}},
        ),
        (
            "SELECT [lat,long] as lat_long FROM 'topic/subtopic'",
            {"lat": 47.606, "long": -122.332},
            {"lat_long": [47.606, -122.332]},
        ),
        # "Data types": {"foo": null} has foo NULL and bar Undefined, which JSON leaves out
        ("SELECT foo, bar FROM 'topic/subtopic'", {"foo": None}, {"foo": None}),
        ("SELECT NULL AS n FROM 'topic/subtopic'", {}, {"n": None}),
        # Alibaba, "SQL expressions": a custom topic's environment sensor above 38 degrees
        (
            "SELECT temperature as t, deviceName() as deviceName, location "
            'FROM "/a1hRrzD****/+/user/update" WHERE temperature > 38',
            {"temperature": 39.5, "humidity": 65, "pressure": 101.5, "location": "xxx,xxx"},
            {"t": 39.5, "deviceName": "TestDevice1", "location": "xxx,xxx"},
        ),
        (
            'SELECT temperature as t FROM "/a1hRrzD****/+/user/update" WHERE temperature > 38',
            {"temperature": 25.1, "humidity": 65, "pressure": 101.5, "location": "xxx,xxx"},
            None,
        ),
    ],
)
def test_documented_examples(text: str, payload: Any, output: dict[str, Any] | None) -> None:
    assert run(text, payload, device=LAMP) == output


# Alibaba's thing-model data, as its "Functions" page shows a temperature post after the rules
# engine turned it into the rule's input
THING_DATA = {
    "deviceType": "Custom",
    "iotId": "H5KURkKdibnZvSls****000100",
    "productKey": "a1HHrkmDmNt",
    "gmtCreate": 1564569974224,
    "deviceName": "TestDevice1",
    "items": {"Temperature": {"value": 23.5, "time": 1564569974229}},
}
ALIBABA_RULE = (
    "SELECT deviceName() as deviceName,items.Temperature.value as Temperature "
    'FROM "/sys/a1HHrkm****/+/thing/event/property/post" '
    "WHERE items.Temperature.value>38 and deviceName() in "
    "('TestDevice1', 'TestDevice2', 'TestDevice3')"
)


def test_alibabas_thing_model_example() -> None:
    hot = {**THING_DATA, "items": {"Temperature": {"value": 39.1, "time": 1564569974229}}}
    assert run(ALIBABA_RULE, hot, device=LAMP) == {"deviceName": "TestDevice1", "Temperature": 39.1}
    assert run(ALIBABA_RULE, THING_DATA, device=LAMP) is None
    other = LAMP.__class__("a1HHrkmDmNt", "TestDevice9")
    assert run(ALIBABA_RULE, hot, device=other) is None
    assert str(why_not(ALIBABA_RULE, hot, device=other)) == (
        "deviceName() in ('TestDevice1', 'TestDevice2', 'TestDevice3'): false"
    )


# -- why a rule did not run --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "payload", "stopped", "undefined"),
    [
        ("a > 1 AND b < 2", {"a": 5, "b": 5}, "b < 2", False),
        ("a > 1 AND b < 2", {"a": 0, "b": 5}, "a > 1", False),
        ("a > 1 AND b < 2", {"a": 5}, "b < 2", True),
        ("a > 1 AND (b < 2 AND c = 3)", {"a": 5, "b": 1, "c": 4}, "c = 3", False),
        ("a > 1 AND (b < 2 OR c = 3)", {"a": 5, "b": 7, "c": 4}, "b < 2 OR c = 3", False),
        ("NOT a = 1 AND b = 2", {"a": 1, "b": 2}, "NOT a = 1", False),
        ("a", {"a": 1}, "a", True),  # 1 is no truth value: AWS converts no number to one
        ("a BETWEEN 1 AND 5", {"a": 6}, "a BETWEEN 1 AND 5", False),
        ("1 = 1 AND 2 = 3", {}, "2 = 3", False),  # folded, yet named
    ],
)
def test_why_not_names_the_smallest_failing_part(
    where: str, payload: Any, stopped: str, undefined: bool
) -> None:
    answer = why_not(f"SELECT * FROM '#' WHERE {where}", payload)
    assert answer is not None
    assert answer.condition == stopped
    assert answer.undefined is undefined


def test_why_not_is_none_when_the_rule_runs_or_has_no_where() -> None:
    assert why_not("SELECT * FROM '#' WHERE a = 1", {"a": 1}) is None
    assert why_not("SELECT * FROM '#'", {}) is None
    assert str(why_not("SELECT * FROM '#' WHERE a = 1", {})) == (
        "a = 1: undefined (a value it reads is missing or not comparable)"
    )


# -- Undefined: a missing field ----------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "missing > 1",
        "missing < 1",
        "missing = 1",
        "missing <> 1",
        "NOT missing = 1",
        "missing BETWEEN 1 AND 2",
        "missing IN (1, 2)",
        "missing NOT IN (1, 2)",
        "missing LIKE '%'",
        "a.b.c > 1",  # a path through a number
        "list[5] = 1",  # past an array's end
        "obj[0] = 1",  # an index into an object
    ],
)
def test_a_missing_field_makes_a_condition_undefined_and_the_rule_not_run(where: str) -> None:
    payload = {"a": 1, "list": [1], "obj": {"k": 1}}
    assert condition(where, payload) is UNDEFINED
    assert not holds(where, payload)


def test_and_or_not_are_three_valued() -> None:
    # SQL's logic: false AND anything is false, true OR anything is true, else Undefined
    assert condition("missing = 1 AND 1 = 2") is False
    assert condition("missing = 1 AND 1 = 1") is UNDEFINED
    assert condition("missing = 1 OR 1 = 1") is True
    assert condition("missing = 1 OR 1 = 2") is UNDEFINED
    assert condition("NOT missing = 1") is UNDEFINED
    assert holds("missing = 1 OR a = 1", {"a": 1})


def test_strings_true_and_false_are_truth_values_other_values_are_not() -> None:
    assert holds("flag", {"flag": True}) and not holds("flag", {"flag": False})
    assert holds("flag", {"flag": "TRUE"}) and not holds("flag", {"flag": "false"})
    assert holds("flag AND 'true'", {"flag": "true"})
    for other in (1, 0, "yes", None, [True], {}):
        stopped = why_not("SELECT * FROM '#' WHERE flag", {"flag": other})
        assert stopped is not None and stopped.undefined


def test_is_null_is_true_for_null_and_for_a_missing_field() -> None:
    assert holds("a IS NULL", {"a": None}) and holds("a IS NULL", {})
    assert not holds("a IS NULL", {"a": 0}) and holds("a IS NOT NULL", {"a": ""})
    assert not holds("a IS NOT NULL", {})
    # isNull and isUndefined tell the two apart
    assert value("isNull(a)", {"a": None}) is True and value("isNull(a)", {}) is False
    assert value("isUndefined(a)", {}) is True and value("isUndefined(a)", {"a": None}) is False


def test_undefined_values_are_left_out_of_the_output() -> None:
    text = "SELECT a, b, a + missing AS c, [a, missing] AS d, {'x': missing, 'y': a} AS e FROM '#'"
    assert run(text, {"a": 1}) == {"a": 1, "d": [1], "e": {"y": 1}}


# -- comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers compare by value, ints with floats
        ("1 = 1.0", True),
        ("2 > 1.5", True),
        ("-1 < 0", True),
        # an ordering converts numeric strings (AWS: "both operands are converted to Decimal")
        ("'10' > 9", True),
        ("'1e2' >= 100", True),
        ("'abc' > 1", UNDEFINED),
        ("'b' > 'a'", UNDEFINED),
        ("true > false", UNDEFINED),
        ("null > 1", UNDEFINED),
        # equality compares types: values of different types are never equal
        ("'5' = 5", False),
        ("'5' <> 5", True),
        ("true = 1", False),
        ("null = null", True),
        ("null = 0", False),
        ("'a' = 'a'", True),
        ("'a' = 'A'", False),
        ("[1, 2] = [1, 2]", True),
        ("[1, 2] = [2, 1]", False),
        ("{'a': 1, 'b': 2} = {'b': 2, 'a': 1}", True),
        ("[true] = [1]", False),
    ],
)
def test_comparisons(text: str, expected: Any) -> None:
    assert condition(text) is expected


def test_comparisons_of_payload_values() -> None:
    payload = {"n": 5, "s": "5", "f": 5.0, "b": True}
    assert holds("n = f AND n >= s AND s <= n AND NOT n = s AND b = true", payload)
    assert holds("n != 4 AND n <> 4", payload)


def test_in() -> None:
    payload = {"name": "TestDevice2", "code": 3, "codes": [1, 3], "words": "x"}
    assert holds("name IN ('TestDevice1', 'TestDevice2')", payload)
    assert holds("name NOT IN ('TestDevice1', 'TestDevice3')", payload)
    assert holds("code IN (1, 2, 3)", payload) and holds("code IN (1.0, 3.0)", payload)
    assert not holds("code IN ('3', true)", payload)
    assert holds("code IN codes", payload) and holds("3 IN [1, 3]", payload)
    assert holds("code IN (1, code)", payload)
    assert condition("code IN words", payload) is UNDEFINED  # not an array
    assert condition("code IN (1, missing)", payload) is UNDEFINED
    assert condition("code IN (3, missing)", payload) is True


def test_between() -> None:
    assert holds("t BETWEEN 20 AND 30", {"t": 20}) and holds("t BETWEEN 20 AND 30", {"t": 30})
    assert not holds("t BETWEEN 20 AND 30", {"t": 30.5})
    assert holds("t NOT BETWEEN 20 AND 30", {"t": 31})
    assert holds("t BETWEEN '1' AND 2.5", {"t": "2"})
    assert condition("t BETWEEN 1 AND missing", {"t": 0}) is False  # below, whatever the top
    assert condition("t BETWEEN 1 AND missing", {"t": 2}) is UNDEFINED


@pytest.mark.parametrize(
    ("subject", "pattern", "expected"),
    [
        ("lamp-12", "lamp-%", True),
        ("lamp-12", "%-12", True),
        ("lamp-12", "%mp%", True),
        ("lamp-12", "lamp-_2", True),
        ("lamp-12", "lamp-_", False),
        ("lamp-12", "LAMP-%", False),  # case matters
        ("a%b", "a\\%b", True),  # an escaped % is a %
        ("axb", "a\\%b", False),
        ("a_b", "a\\_b", True),
        ("a.b", "a.b", True),  # no regular expression
        ("axb", "a.b", False),
        ("line\nbreak", "line%", True),
        (1234, "12%", True),  # a number as its text
        (True, "tr%", True),
    ],
)
def test_like(subject: Any, pattern: str, expected: bool) -> None:
    escaped = pattern.replace("\\", "\\\\")
    assert condition(f"s LIKE '{escaped}'", {"s": subject}) is expected
    assert condition(f"s NOT LIKE '{escaped}'", {"s": subject}) is (not expected)
    assert condition("s LIKE p", {"s": subject, "p": pattern}) is expected


def test_like_on_no_text_is_undefined() -> None:
    for subject in ([1], {"a": 1}, None):
        assert condition("s LIKE '%'", {"s": subject}) is UNDEFINED
    assert condition("'a' LIKE p", {"p": None}) is UNDEFINED


# -- arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 / 2", 3),  # AWS: Int / Int is an Int
        ("-7 / 2", -3),  # cut toward zero
        ("7 / -2", -3),
        ("7.0 / 2", 3.5),
        ("7 / 2.0", 3.5),
        ("7 % 3", 1),
        ("-7 % 3", -1),  # the sign of the dividend, as Java's remainder
        ("7.5 % 2", 1.5),
        ("1 / 0", UNDEFINED),
        ("1 % 0", UNDEFINED),
        ("1.5 / 0", UNDEFINED),
        ("2 * 3", 6),
        ("2 * 1.5", 3.0),
        ("'2' * 3", 6),  # numeric strings convert
        ("'2.5' - 1", 1.5),
        ("'x' - 1", UNDEFINED),
        ("true + 1", UNDEFINED),
        ("null * 2", UNDEFINED),
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("-(2 + 3)", -5),
        ("-'4'", -4),
        # + joins strings: the other side as a string
        ("'a' + 1", "a1"),
        ("1 + 'a'", "1a"),
        ("'x' + true", "xtrue"),
        ("'x' + [1, 'b']", 'x[1,"b"]'),
        ("'x' + null", UNDEFINED),
        ("1e308 * 10", UNDEFINED),  # out of a float's range
    ],
)
def test_arithmetic(text: str, expected: Any) -> None:
    found = value(text)
    assert found == expected and type(found) is type(expected)


def test_arithmetic_on_payload_values() -> None:
    payload = {"a": 10, "b": 4, "c": 2.5, "big": 10**30}
    assert value("a / b", payload) == 2 and value("a / c", payload) == 4.0
    assert value("big * 10 + 1", payload) == 10**31 + 1
    assert value("big * 1e300 * 1e300", payload) is UNDEFINED
    assert value("big + missing", payload) is UNDEFINED


# -- paths, SELECT -----------------------------------------------------------------------------


def test_paths_into_objects_and_arrays() -> None:
    payload = {"a": {"b": {"c": [{"d": 1}, {"d": 2}]}}, "e": [[1, 2], [3]], "i": 1}
    assert value("a.b.c[1].d", payload) == 2
    assert value("e[1][0]", payload) == 3
    assert value("e[i][0]", payload) == 3  # a computed index
    assert value("e[-1]", payload) is UNDEFINED
    assert value("a.b.c[2].d", payload) is UNDEFINED
    assert value("get(a.b.c, 0).d", payload) == 1
    assert value("a['b'].c[0]", payload) == {"d": 1}
    assert value("`a`.b.c[0].d", payload) == 1
    assert value("x.y", {"x": None}) is UNDEFINED


def test_paths_on_a_payload_that_is_no_object() -> None:
    for payload in (42, "text", [1, 2], None):
        assert value("a", payload) is UNDEFINED
        assert value("a.b.c", payload) is UNDEFINED
        assert value("a[0].b.c.d", payload) is UNDEFINED
        assert run("SELECT * FROM '#'", payload) == {}
        assert run("SELECT *, 1 AS one FROM '#'", payload) == {"one": 1}


def test_select_star_copies_and_later_items_win() -> None:
    payload = {"a": 1, "b": {"c": 2}}
    out = run("SELECT *, 5 AS a, 3 AS b.d FROM '#'", payload)
    assert out == {"a": 5, "b": {"c": 2, "d": 3}}
    assert payload == {"a": 1, "b": {"c": 2}}  # the payload is never changed


def test_where_cannot_read_select_aliases() -> None:
    # AWS: the WHERE is evaluated first; an alias is no field of the payload
    assert run("SELECT a AS renamed FROM '#' WHERE renamed = 1", {"a": 1}) is None


def test_case() -> None:
    searched = "CASE WHEN t > 30 THEN 'hot' WHEN t > 20 THEN 'warm' ELSE 'cold' END"
    assert [value(searched, {"t": t}) for t in (35, 25, 5)] == ["hot", "warm", "cold"]
    assert value(searched, {}) == "cold"  # an undefined WHEN is not true
    assert value("CASE WHEN t > 30 THEN 'hot' END", {"t": 1}) is UNDEFINED
    assert value("CASE t WHEN 1 THEN 'one' WHEN 1.0 THEN 'float' END", {"t": 1}) == "one"
    assert value("CASE t WHEN '1' THEN 'text' ELSE 'other' END", {"t": 1}) == "other"
    assert value("CASE t WHEN 1 THEN 'one' ELSE 'other' END", {}) is UNDEFINED  # AWS's note
    assert value("CASE t WHEN missing THEN 'x' ELSE 'other' END", {"t": 1}) == "other"


def test_constant_parts_are_folded_once_and_the_rest_read_each_message() -> None:
    rule = compiled("SELECT 2 * 3 + 1 AS k, newuuid() AS id, a * 2 AS d FROM '#'")
    first = rule.run(message({"a": 1}))
    second = rule.run(message({"a": 2}))
    assert first is not None and second is not None
    assert first["k"] == second["k"] == 7
    assert first["id"] != second["id"]  # newuuid is called on each message
    assert (first["d"], second["d"]) == (2, 4)


def test_a_rule_is_reused_across_messages() -> None:
    rule = compiled("SELECT * FROM '/+/+/thing/event/property/post' WHERE items.T.value > 30")
    hot = message({"items": {"T": {"value": 31}}})
    cold = message({"items": {"T": {"value": 29}}})
    assert [rule.run(one) for one in (hot, cold, hot)] == [hot.payload, None, hot.payload]
    assert rule.rule.listens_to("/a1B2/lamp-1/thing/event/property/post")


# -- whatever the payload, an answer -----------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["a", "b", "items", "T", "value", "0"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
WHERES = [
    "a > b",
    "a = b OR NOT a <> b",
    "a BETWEEN b AND 10 AND a LIKE b",
    "a IN b OR a IN (b, 1, 'x') OR a IS NULL",
    "items.T.value * 2 / a % b >= -a + b - 1",
    "CASE a WHEN b THEN true ELSE a END",
    "get(a, b) = substring(a, b, a) OR regexp_matches(a, b)",
    "concat(a, b) = upper(a) + lower(b) AND startswith(a, b) OR endswith(b, a)",
    "round(a) + floor(b) + ceil(a) + abs(b) + mod(a, b) + power(a, b) > length(a)",
    "format_date(a, b, b) = replace(a, b, a) AND nanvl(a, b) = a[b] AND a.b[0].value = 1",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(WHERES), JSON, JSON, JSON)
def test_any_payload_gets_an_answer_never_an_exception(
    where: str, a: Any, b: Any, items: Any
) -> None:
    text = f"SELECT *, a + b AS s, [a, b] AS l, {{'k': b}} AS o FROM '#' WHERE {where}"
    rule = compiled(text)
    for payload in ({"a": a, "b": b, "items": items}, a, items):
        one = message(payload)
        out = rule.run(one)
        assert out is None or isinstance(out, dict)
        assert (out is None) == (rule.why_not(one) is not None)
