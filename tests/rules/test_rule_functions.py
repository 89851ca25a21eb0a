"""Every function of the rule language, with the examples AWS's and Alibaba's function pages
give (their documented results), and what each does with wrong arguments: Undefined, never an
exception."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from rule_cases import LAMP, value

from hongshan.rules.functions import FUNCTIONS
from hongshan.rules.sql import RuleSyntaxError, parse
from hongshan.rules.values import UNDEFINED

# Alibaba's timestamp() example: 1543373798943 is 2018-11-28 02:56:38.943 UTC
RECEIVED = 1543373798943


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # abs (AWS: abs(-5) = 5; a numeric string is converted)
        ("abs(-5)", 5),
        ("abs(-5.5)", 5.5),
        ("abs('-5.123')", 5.123),
        ("abs('x')", UNDEFINED),
        ("abs(true)", UNDEFINED),
        # ceil, floor (AWS's examples)
        ("ceil(1.2)", 2),
        ("ceil(-1.2)", -1),
        ("ceil(3)", 3),
        ("floor(1.2)", 1),
        ("floor(-1.2)", -2),
        ("floor('2.7')", 2),
        ("floor([1])", UNDEFINED),
        # round (AWS: Round(1.2) = 1, (1.5) = 2, (1.7) = 2, (-1.1) = -1, (-1.5) = -2)
        ("round(1.2)", 1),
        ("round(1.5)", 2),
        ("round(1.7)", 2),
        ("round(-1.1)", -1),
        ("round(-1.5)", -2),
        ("round(2.5)", 3),  # half away from zero, not to even
        ("round(7)", 7),
        # mod (AWS: mod(8, 3) = 2), like %
        ("mod(8, 3)", 2),
        ("mod(-8, 3)", -2),
        ("mod(8.5, 2)", 0.5),
        ("mod(8, 0)", UNDEFINED),
        # power
        ("power(2, 10)", 1024.0),
        ("power(-8, 0.5)", UNDEFINED),
        ("power(10, 400)", UNDEFINED),
        # nanvl (AWS: nanvl(8, 3) = 8)
        ("nanvl(8, 3)", 8),
        ("nanvl(missing, 3)", 3),
        ("nanvl(null, 'x')", "x"),
        # concat (AWS's examples)
        ("concat()", UNDEFINED),
        ("concat(1)", "1"),
        ("concat([1, 2, 3], 4)", [1, 2, 3, 4]),
        ("concat([1, 2, 3], 'hello')", [1, 2, 3, "hello"]),
        ("concat('con', 'cat')", "concat"),
        ("concat(1, 'hello')", "1hello"),
        ("concat('he', 'is', 'man')", "heisman"),
        ("concat([1, 2, 3], 'hello', [4, 5, 6])", [1, 2, 3, "hello", 4, 5, 6]),
        ("concat('a', missing)", UNDEFINED),
        ("concat('a', null)", UNDEFINED),
        # lower, upper (AWS: a non-string is converted: lower(["HELLO"]) = "[\"hello\"]")
        ("lower('HELLO')", "hello"),
        ("lower(['HELLO'])", '["hello"]'),
        ("upper('hello')", "HELLO"),
        ("upper(['hello'])", '["HELLO"]'),
        ("upper(alibaba)", "ALIBABA"),  # Alibaba's example, on the field alibaba
        ("upper(null)", UNDEFINED),
        ("lower(true)", "true"),
        # substring (AWS's examples, all of them)
        ("substring('012345', 0)", "012345"),
        ("substring('012345', 2)", "2345"),
        ("substring('012345', 2.745)", "2345"),
        ("substring(123, 2)", "3"),
        ("substring('012345', -1)", "012345"),
        ("substring(true, 1.2)", "rue"),
        ("substring(false, -2.411E247)", "false"),
        ("substring('012345', 1, 3)", "12"),
        ("substring('012345', -50, 50)", "012345"),
        ("substring('012345', 3, 1)", ""),
        ("substring('012345', 'x')", UNDEFINED),
        # startswith, endswith (AWS's examples; Null or Undefined give Undefined)
        ("startswith('ranger', 'ran')", True),
        ("startswith('ranger', 'ger')", False),
        ("startswith(12345, 12)", True),
        ("startswith(null, 'a')", UNDEFINED),
        ("endswith('cat', 'at')", True),
        ("endswith('cat', 'ca')", False),
        ("endswith(missing, 'a')", UNDEFINED),
        # regexp_matches (AWS's examples; an invalid pattern gives Undefined)
        ("regexp_matches('aaaa', 'a{2,}')", True),
        ("regexp_matches('aaaa', 'b')", False),
        ("regexp_matches('lamp-0042', '\\d{4}$')", True),
        ("regexp_matches('aaaa', '(')", UNDEFINED),
        ("regexp_matches(null, 'a')", UNDEFINED),
        ("regexp_matches(1234, '^12')", True),
        # replace (Alibaba's replace(field, 'a', '1'))
        ("replace('banana', 'a', '1')", "b1n1n1"),
        ("replace(null, 'a', '1')", UNDEFINED),
        # length
        ("length('hello')", 5),
        ("length([1, 2])", 2),
        ("length(42)", 2),
        # get (AWS's examples; its page gives get("abc", 1) = "a", against its own 0-based
        # table: "b" is what the table says)
        ("get(['a', 'b', 'c'], 1)", "b"),
        ("get({'a': 'b'}, 'a')", "b"),
        ("get('abc', 1)", "b"),
        ("get(['a'], '0')", "a"),
        ("get(['a'], 1)", UNDEFINED),
        ("get(['a'], -1)", UNDEFINED),
        ("get({'a': 'b'}, 1)", UNDEFINED),
        ("get(5, 0)", UNDEFINED),
        # isNull, isUndefined
        ("isNull(null)", True),
        ("isNull(missing)", False),
        ("isUndefined(missing)", True),
        ("isUndefined(0)", False),
        # format_date
        ("format_date(1543373798943, 'yyyy-MM-dd HH:mm:ss')", "2018-11-28 02:56:38"),
        (
            "format_date(1543373798943, 'yyyy-MM-dd HH:mm:ss.SSS', 'GMT+8')",
            "2018-11-28 10:56:38.943",
        ),
        (
            "format_date(1543373798943, 'yyyy-MM-dd\\'T\\'HH:mm:ssXXX', '+08:00')",
            "2018-11-28T10:56:38+08:00",
        ),
        (
            "format_date(1543373798943, 'EEE d MMM yy, h:mm a Z', 'UTC-5')",
            "Tue 27 Nov 18, 9:56 PM -0500",
        ),
        ("format_date(1543373798943, 'EEEE MMMM', 'Asia/Shanghai')", "Wednesday November"),
        ("format_date(1543373798943, 'HH''h''mm X')", "02h56 Z"),
        ("format_date('1543373798943', 'yyyy')", "2018"),
        ("format_date(1543373798943, 'yyyy', 'Mars/Olympus')", UNDEFINED),
        ("format_date(1543373798943, 'yyyy Q')", UNDEFINED),  # Q: no letter of ours
        ("format_date(1543373798943, 'yyyy ''open')", UNDEFINED),  # a quote not closed
        ("format_date('soon', 'yyyy')", UNDEFINED),
        ("format_date(1e20, 'yyyy')", UNDEFINED),
    ],
)
def test_functions(expression: str, expected: Any) -> None:
    found = value(expression, {"alibaba": "alibaba"})
    assert found == expected and type(found) is type(expected)


def test_functions_of_the_message() -> None:
    fields: dict[str, Any] = {
        "topic": "/alDbcLe****/TestDevice/user/set",
        "received": RECEIVED,
        "client_id": "lamp-1|securemode=3|",
        "device": LAMP,
        "tags": {"imei": "XIXI2018034532", "location": "西溪湿地-洪园"}.get,
        "latest": {"Brightness": 80, "Gone": None}.get,
    }
    # Alibaba's topic() example: topic(1) is the first level after the leading slash
    assert value("topic()", **fields) == "/alDbcLe****/TestDevice/user/set"
    assert value("topic(1)", **fields) == "alDbcLe****"
    assert value("topic(2)", **fields) == "TestDevice"
    assert value("topic(4)", **fields) == "set"
    assert value("topic(5)", **fields) is UNDEFINED
    assert value("topic(0)", **fields) is UNDEFINED
    assert value("topic('x')", **fields) is UNDEFINED
    assert value("deviceName()", **fields) == "TestDevice1"
    assert value("productKey()", **fields) == "a1HHrkmDmNt"
    assert value("clientid()", **fields) == "lamp-1|securemode=3|"
    assert value("attribute('location')", **fields) == "西溪湿地-洪园"
    assert value("attribute('nothing')", **fields) is UNDEFINED
    assert value("latest('Brightness')", **fields) == 80
    assert value("latest('Gone')", **fields) is UNDEFINED
    # Alibaba's timestamp examples: the time in ms, or formatted (here in UTC)
    assert value("timestamp()", **fields) == RECEIVED
    assert value("timestamp_utc()", **fields) == RECEIVED
    pattern = "'yyyy-MM-dd\\'T\\'HH:mm:ss\\'Z\\''"
    assert value(f"timestamp_utc({pattern})", **fields) == "2018-11-28T02:56:38Z"
    assert value(f"timestamp({pattern})", **fields) == "2018-11-28T02:56:38Z"


def test_aws_topic_example_and_a_message_without_a_device() -> None:
    fields: dict[str, Any] = {"topic": "things/myThings/thingOne"}
    assert value("topic()", **fields) == "things/myThings/thingOne"
    assert value("topic(1)", **fields) == "things"
    assert value("topic(3)", **fields) == "thingOne"
    assert value("deviceName()", **fields) is UNDEFINED
    assert value("productKey()", **fields) is UNDEFINED
    assert value("attribute('location')", **fields) is UNDEFINED
    assert value("latest('Brightness')", **fields) is UNDEFINED
    assert value("clientid()", **fields) == "n/a"  # AWS: n/a when not sent over MQTT


def test_timestamp_is_now_when_the_message_says_no_time() -> None:
    before = time.time_ns() // 1_000_000
    found = value("timestamp()")
    assert before <= found <= time.time_ns() // 1_000_000


def test_newuuid_is_a_new_random_uuid_each_time() -> None:
    first = value("newuuid()")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first
    )
    assert value("newuuid()") != first


def test_function_names_are_case_insensitive() -> None:
    assert value("DEVICENAME()", device=LAMP) == "TestDevice1"
    assert value("Round(1.5)") == 2  # as AWS's page writes it
    assert value("UPPER('a')") == "A"


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("SELECT nosuch(1) FROM 'x'", 8, "no function is named nosuch()"),
        ("SELECT a FROM 'x' WHERE Deviceid() = 'a'", 25, "no function is named Deviceid()"),
        ("SELECT abs() FROM 'x'", 8, "abs() takes 1 argument, not 0"),
        ("SELECT deviceName(1) FROM 'x'", 8, "deviceName() takes no arguments, not 1"),
        ("SELECT substring('a') FROM 'x'", 8, "substring() takes 2 to 3 arguments, not 1"),
        ("SELECT latest(name) FROM 'x'", 15, "latest() takes a property's identifier in quotes"),
    ],
)
def test_unknown_functions_and_wrong_arities_are_syntax_errors(
    text: str, column: int, problem: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.column) == (1, column)
    assert caught.value.problem == problem


def test_every_function_is_tested_here() -> None:
    with open(__file__, encoding="utf-8") as source:
        text = source.read().lower()
    untested = [name for name in FUNCTIONS if f"{name}(" not in text]
    assert untested == []
