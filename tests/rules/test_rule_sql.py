"""The rule language's parser: the statements Alibaba's and AWS's documentation write, parsed
to the tree they mean; and texts that are no rule refused with their line, column and what was
expected there."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hongshan.errors import HongshanError
from hongshan.rules.sql import MAX_DEPTH, MAX_LENGTH, RuleSyntaxError, parse, unquote
from hongshan.rules.tree import (
    And,
    ArrayOf,
    Between,
    Call,
    Case,
    Compare,
    In,
    IsNull,
    Like,
    Literal,
    Member,
    Not,
    ObjectOf,
    Or,
    Path,
    SelectAll,
    Selected,
)

# the statements of the documentation, as written there (Alibaba's quote their topic filter
# with double quotes, AWS's with single ones)
DOCUMENTED = [
    # Alibaba, "Functions" (the usage example)
    "SELECT deviceName() as deviceName,items.Temperature.value as Temperature "
    'FROM "/sys/a1HHrkm****/+/thing/event/property/post" '
    "WHERE items.Temperature.value>38 and deviceName() in "
    "('TestDevice1', 'TestDevice2', 'TestDevice3')",
    # Alibaba, "SQL expressions"
    "SELECT temperature as t, deviceName() as deviceName, location "
    'FROM "/a1hRrzD****/+/user/update" WHERE temperature > 38',
    # AWS, "AWS IoT SQL reference" and its SELECT, WHERE, FROM and CASE pages
    "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
    "SELECT * FROM 'topic/subtopic'",
    "SELECT *, 15 as speed FROM 'topic/subtopic'",
    "SELECT color.red as red_value FROM 'topic/subtopic'",
    "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color FROM 'topic/subtopic'",
    "SELECT color AS my_color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
    "SELECT temperature AS t FROM 'topic/#'",
    "SELECT temperature AS t FROM 'topic/+'",
    "SELECT CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' "
    "WHEN 'red' THEN 'stop' ELSE 'you are not at a stop light' END as instructions "
    "FROM 'topic/subtopic'",
    "SELECT foo.bar AS bar.baz FROM 'topic/subtopic'",
    'SELECT * from \'iot/rules\' WHERE get(get(get(mydata,"item2"),"0"),"my-key") = "myValue"',
    "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long "
    "FROM 'topic/subtopic'",
    "SELECT [lat,long] as lat_long FROM 'topic/subtopic'",
]


@pytest.mark.parametrize("text", DOCUMENTED)
def test_the_documented_statements_parse(text: str) -> None:
    rule = parse(text)
    assert rule.text == text
    assert rule.select


def test_alibabas_example_as_a_tree() -> None:
    rule = parse(DOCUMENTED[0])
    assert rule.topic_filter == "/sys/a1HHrkm****/+/thing/event/property/post"
    device, temperature = rule.select
    assert isinstance(device, Selected) and device.key == ("deviceName",)
    assert device.expr == Call("devicename", (), device.expr.span)
    assert isinstance(temperature, Selected) and temperature.key == ("Temperature",)
    assert isinstance(temperature.expr, Path)
    assert temperature.expr.steps == ("items", "Temperature", "value")
    where = rule.where
    assert isinstance(where, And) and len(where.parts) == 2
    above, named = where.parts
    assert isinstance(above, Compare) and above.op == ">"
    assert rule.text_of(above) == "items.Temperature.value>38"
    assert isinstance(named, In) and named.options is not None
    assert [option.value for option in named.options if isinstance(option, Literal)] == [
        "TestDevice1",
        "TestDevice2",
        "TestDevice3",
    ]
    assert rule.text_of(named) == "deviceName() in ('TestDevice1', 'TestDevice2', 'TestDevice3')"


def test_keywords_are_case_insensitive_and_names_are_not_keywords() -> None:
    rule = parse("select index, notes, Inner, items, ends from 't' where isnt = 1 OR orders = 2")
    names = [item.key for item in rule.select if isinstance(item, Selected)]
    assert names == [("index",), ("notes",), ("Inner",), ("items",), ("ends",)]
    assert isinstance(rule.where, Or)


def test_the_select_list() -> None:
    rule = parse("SELECT *, a.b, a.b AS c.d, get(x, 0).v, a[0], 1 + 2, `my-key` FROM 't'")
    star, plain, nested, member, indexed, sum_, quoted = rule.select
    assert isinstance(star, SelectAll)
    assert isinstance(plain, Selected) and plain.key == ("b",)  # a field keeps its name
    assert isinstance(nested, Selected) and nested.key == ("c", "d")  # AWS: AS bar.baz
    assert isinstance(member, Selected) and member.key == ("v",)
    assert isinstance(member.expr, Member)
    assert isinstance(indexed, Selected) and indexed.key == ("a[0]",)
    assert isinstance(indexed.expr, Path) and indexed.expr.steps == ("a", 0)
    assert isinstance(sum_, Selected) and sum_.key == ("1 + 2",)  # anything else: its text
    assert isinstance(quoted, Selected) and quoted.key == ("my-key",)


def test_paths_with_indexes_are_one_path() -> None:
    rule = parse("SELECT a.b.c[0].d, a[-1], a[i] FROM 't'")
    first, last, computed = (item.expr for item in rule.select if isinstance(item, Selected))
    assert isinstance(first, Path) and first.steps == ("a", "b", "c", 0, "d")
    assert isinstance(last, Path) and last.steps == ("a", -1)
    assert not isinstance(computed, Path)  # a computed index is looked up when evaluated


def test_predicates() -> None:
    rule = parse(
        "SELECT a FROM 't' WHERE a NOT BETWEEN 1 AND 5 AND b NOT LIKE 'x%' "
        "AND c IS NOT NULL AND d IS NULL AND e NOT IN [1, 2] AND f IN g.h AND NOT a = 1"
    )
    assert isinstance(rule.where, And)
    between, like, not_null, null, not_in, in_field, negation = rule.where.parts
    assert isinstance(between, Between) and between.negated
    assert isinstance(like, Like) and like.negated
    assert isinstance(not_null, IsNull) and not_null.negated
    assert isinstance(null, IsNull) and not null.negated
    assert isinstance(not_in, In) and not_in.negated and isinstance(not_in.collection, ArrayOf)
    assert isinstance(in_field, In) and isinstance(in_field.collection, Path)
    assert in_field.collection.steps == ("g", "h")
    assert isinstance(negation, Not)


def test_and_binds_tighter_than_or_and_chains_are_flat() -> None:
    rule = parse("SELECT a FROM 't' WHERE a = 1 OR b = 2 AND c = 3 OR d = 4")
    assert isinstance(rule.where, Or) and len(rule.where.parts) == 3
    assert isinstance(rule.where.parts[1], And)
    grouped = parse("SELECT a FROM 't' WHERE (a = 1 OR b = 2) AND c = 3").where
    assert isinstance(grouped, And) and isinstance(grouped.parts[0], Or)


def test_comparisons() -> None:
    for op in ("=", "<>", "<", "<=", ">", ">="):
        where = parse(f"SELECT a FROM 't' WHERE a {op} 1").where
        assert isinstance(where, Compare) and where.op == op
    where = parse("SELECT a FROM 't' WHERE a != 1").where
    assert isinstance(where, Compare) and where.op == "<>"


def test_case_with_and_without_a_subject() -> None:
    simple, searched = (
        item.expr
        for item in parse(
            "SELECT CASE a WHEN 1 THEN 'one' END, "
            "CASE WHEN a > 1 THEN 'big' WHEN a < 0 THEN 'negative' ELSE 'small' END FROM 't'"
        ).select
        if isinstance(item, Selected)
    )
    assert isinstance(simple, Case) and simple.subject is not None and simple.default is None
    assert isinstance(searched, Case) and searched.subject is None
    assert len(searched.whens) == 2
    assert isinstance(searched.default, Literal) and searched.default.value == "small"


def test_literals() -> None:
    values = [
        item.expr
        for item in parse(
            "SELECT 1, 2.5, 1e3, -4, +5, 'it''s', 'a\\'b', \"dq\", true, FALSE, null, "
            "[1, 'x'], {'k': 1, n: 2} FROM 't'"
        ).select
        if isinstance(item, Selected)
    ]
    literal = [node.value for node in values if isinstance(node, Literal)]
    assert literal == [1, 2.5, 1000.0, -4, 5, "it's", "a'b", "dq", True, False, None]
    assert isinstance(values[-2], ArrayOf) and isinstance(values[-1], ObjectOf)
    assert [key for key, _ in values[-1].pairs] == ["k", "n"]


def test_strings_keep_unknown_escapes_for_regular_expressions() -> None:
    assert unquote(r"'\d+\.\d'") == r"\d+\.\d"
    assert unquote(r"'tab\there'") == "tab\there"
    assert unquote(r'"say \"hi\""') == 'say "hi"'


def test_the_topic_filter_in_either_quotes() -> None:
    assert parse("SELECT a FROM '/a/+/b/#'").topic_filter == "/a/+/b/#"
    rule = parse('SELECT a FROM "/+/+/thing/event/property/post"')
    assert rule.listens_to("/a1B2c3D4e5F/lamp-1/thing/event/property/post")
    assert not rule.listens_to("/a1B2c3D4e5F/lamp-1/thing/event/property/post_reply")
    assert parse("SELECT a FROM 'x'").where is None


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("", 1, 1, "expected SELECT, got the end of the rule"),
        ("SELECT", 1, 7, "expected '*' or an expression, got the end of the rule"),
        ("SELECT a", 1, 9, "got the end of the rule"),
        ("SELECT a FROM x", 1, 15, "expected a topic filter in quotes, got 'x'"),
        ("SELECT a FROM 'x' WHERE a >", 1, 28, "expected an expression, got the end of the rule"),
        ("SELECT a FROM 'x' WHERE a > > 1", 1, 29, "expected an expression, got '>'"),
        ("SELECT a b FROM 'x'", 1, 10, "expected '(', ',', AS, FROM or an operator, got 'b'"),
        ("SELECT a,\n  b FROM 'x' WHERE\n a = = 1", 3, 6, "expected an expression, got '='"),
        ("SELECT a FROM 'x' WHERE ! a", 1, 25, "unexpected character '!'"),
        ('SELECT \'abc FROM "x"', 1, 8, "a string that is not closed"),
        ("SELECT `abc FROM 'x'", 1, 8, "a quoted field name that is not closed"),
        ("SELECT a FROM 'x/#/y'", 1, 15, "misplaced wildcard in topic filter 'x/#/y'"),
        ("SELECT a FROM ''", 1, 15, "empty topic filter"),
        ("SELECT a FROM 'x' WHERE a BETWEEN 1", 1, 36, "expected '+', '-' or AND"),
        ("SELECT a FROM 'x' WHERE a < b < c", 1, 31, "got '<'"),
        ("SELECT CASE WHEN a THEN 1 FROM 'x'", 1, 27, "expected ELSE, END or WHEN, got 'FROM'"),
        ("SELECT * + 1 FROM 'x'", 1, 10, "expected ',' or FROM, got '+'"),
    ],
)
def test_syntax_errors_name_line_column_and_what_was_expected(
    text: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text)
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert message in error.problem
    assert str(error) == f"line {line}, column {column}: {error.problem}"


def test_a_syntax_error_is_the_apis_400_with_its_position() -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse("SELECT a FROM 'x' WHERE a >")
    assert isinstance(caught.value, HongshanError) and caught.value.http_status == 400
    assert caught.value.extensions == {
        "line": 1,
        "column": 28,
        "expected": ["an expression"],
    }


def test_too_long_and_too_deep_rules_are_refused() -> None:
    with pytest.raises(RuleSyntaxError, match="longer than"):
        parse("SELECT a FROM 'x' WHERE a = '" + "x" * MAX_LENGTH + "'")
    deep = "SELECT a FROM 'x' WHERE " + "-" * MAX_DEPTH + "a > 1"
    with pytest.raises(RuleSyntaxError, match="nested more than"):
        parse(deep)
    parse("SELECT a FROM 'x' WHERE " + "-" * (MAX_DEPTH - 2) + "a > 1")
    # parentheses add no depth, and a folded constant none either
    parse("SELECT a FROM 'x' WHERE " + "(" * 1000 + "a" + ")" * 1000 + " > " + "-" * 500 + "1")


# -- whatever the text, a rule or RuleSyntaxError ----------------------------------------------

TOKENS = [
    *("SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS"),
    *("NULL", "TRUE", "FALSE", "CASE", "WHEN", "THEN", "ELSE", "END", "*", ",", ".", ":"),
    *("(", ")", "[", "]", "{", "}", "+", "-", "/", "%", "=", "<>", "!=", "<", "<=", ">", ">="),
    "a",
    "b.c",
    "items.T.value",
    "deviceName()",
    "get(a, 0)",
    "'x'",
    '"t/#"',
    "'/+/+/thing/event/property/post'",
    "1",
    "2.5",
    "-3",
    "1e400",
    "`q`",
    "'",
    '"',
    "`",
    "\n",
]


def _parses_or_refuses(text: str) -> None:
    try:
        rule = parse(text)
    except RuleSyntaxError as error:
        assert error.line >= 1 and error.column >= 1
        assert error.line <= text.count("\n") + 1
    else:
        assert rule.text == text


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_syntax_error(text: str) -> None:
    _parses_or_refuses(text)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_any_sequence_of_the_languages_words_parses_or_is_a_syntax_error(
    words: list[str],
) -> None:
    _parses_or_refuses(" ".join(words))


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(DOCUMENTED),
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=0, max_value=5),
    st.text(max_size=3),
)
def test_documented_statements_cut_or_garbled_parse_or_are_syntax_errors(
    text: str, at: int, cut: int, inserted: str
) -> None:
    _parses_or_refuses(text[:at] + inserted + text[at + cut :])
