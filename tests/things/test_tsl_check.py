"""Thing models: property posts, property sets, events and services checked value by value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hongshan.messages import ProblemKind
from hongshan.things.tsl import Problem, ThingModel
from hongshan.things.tsl_check import check_value, quick_check
from hongshan.things.tsl_types import BoolType, EnumType, NumberType, TextType

DATA = Path(__file__).parent / "data"
K = ProblemKind


def _load(name: str) -> ThingModel:
    return ThingModel.from_json((DATA / name).read_text(encoding="utf-8"))


LIGHT = _load("streetlight.json")
OXIMETER = _load("oximeter.json")


def _one_type(data_type: dict[str, Any]) -> ThingModel:
    prop = {"identifier": "V", "name": "v", "accessMode": "rw", "dataType": data_type}
    return ThingModel.from_json({"profile": {"productKey": "a1"}, "properties": [prop]})


def _kinds(problems: list[Problem]) -> list[ProblemKind]:
    return [problem.kind for problem in problems]


INT = {"type": "int", "specs": {"min": "-10", "max": "100", "step": "5"}}
INT_OPEN = {"type": "int", "specs": {}}
FLOAT = {"type": "float", "specs": {"min": "0.5", "max": "9.5"}}
FLOAT_OPEN = {"type": "float", "specs": {}}
DOUBLE = {"type": "double", "specs": {"min": "-180", "max": "180"}}
DOUBLE_OPEN = {"type": "double", "specs": {}}
TEXT = {"type": "text", "specs": {"length": "5"}}
TEXT_OPEN = {"type": "text", "specs": {}}
DATE = {"type": "date", "specs": {}}
BOOL = {"type": "bool", "specs": {"0": "off", "1": "on"}}
ENUM = {"type": "enum", "specs": {"0": "manual", "2": "auto", "-1": "unknown"}}
MEMBER_A = {"identifier": "a", "name": "a", "dataType": INT}
MEMBER_B = {"identifier": "b", "name": "b", "dataType": TEXT}
STRUCT = {"type": "struct", "specs": [MEMBER_A, MEMBER_B]}
ARRAY_INT = {"type": "array", "specs": {"size": "3", "item": {"type": "int"}}}
ARRAY_DOUBLE = {"type": "array", "specs": {"size": "2", "item": DOUBLE}}
ARRAY_TEXT = {"type": "array", "specs": {"size": "2", "item": TEXT}}
ARRAY_STRUCT = {"type": "array", "specs": {"size": "2", "item": STRUCT}}

GOOD = [
    (INT, -10),
    (INT, 100),
    (INT, 37),  # step is advisory: 37 is not a multiple of 5
    (INT_OPEN, 2147483647),
    (INT_OPEN, -2147483648),
    (FLOAT, 0.5),
    (FLOAT, 9.5),
    (FLOAT, 3),  # an integer is a fine float
    (FLOAT_OPEN, 3.4e38),
    (DOUBLE, -180),
    (DOUBLE, 179.999999),
    (DOUBLE_OPEN, 1e300),
    (TEXT, ""),
    (TEXT, "abcde"),
    (TEXT, "路灯一号灯"),  # five characters, fifteen bytes: length counts characters
    (TEXT_OPEN, "x" * 10240),
    (DATE, "1700000000000"),
    (DATE, 1700000000000),
    (DATE, "0"),
    (BOOL, 0),
    (BOOL, 1),
    (ENUM, 0),
    (ENUM, 2),
    (ENUM, -1),
    (STRUCT, {"a": 1, "b": "x"}),
    (STRUCT, {"a": 1}),  # members may be omitted
    (STRUCT, {}),
    (ARRAY_INT, []),
    (ARRAY_INT, [1, 2, 3]),
    (ARRAY_DOUBLE, [1.5, -2]),
    (ARRAY_TEXT, ["ab", "cde"]),
    (ARRAY_STRUCT, [{"a": 5, "b": "on"}, {"a": 6}]),
]

BAD = [
    (INT, 101, K.INT_OUT_OF_RANGE, "int value 101 is bigger than max 100 -> V"),
    (INT, -11, K.INT_OUT_OF_RANGE, "int value -11 is smaller than min -10 -> V"),
    (INT, 1.5, K.INT_WRONG_TYPE, "data type is not int -> V"),
    (INT, 15.0, K.INT_WRONG_TYPE, "data type is not int -> V"),
    (INT, "15", K.INT_WRONG_TYPE, "data type is not int -> V"),
    (INT, True, K.INT_WRONG_TYPE, "data type is not int -> V"),
    (INT, None, K.INT_WRONG_TYPE, "data type is not int -> V"),
    (INT_OPEN, 2147483648, K.INT_OUT_OF_RANGE, "int value 2147483648 is out of int32 range -> V"),
    (INT_OPEN, -2147483649, K.INT_OUT_OF_RANGE, "int value -2147483649 is out of int32 range -> V"),
    (FLOAT, 0.4, K.FLOAT_OUT_OF_RANGE, "float value 0.4 is smaller than min 0.5 -> V"),
    (FLOAT, 9.6, K.FLOAT_OUT_OF_RANGE, "float value 9.6 is bigger than max 9.5 -> V"),
    (FLOAT, "1.5", K.FLOAT_WRONG_TYPE, "data type is not float -> V"),
    (FLOAT, False, K.FLOAT_WRONG_TYPE, "data type is not float -> V"),
    (FLOAT_OPEN, 3.5e38, K.FLOAT_OUT_OF_RANGE, "float value 3.5e+38 does not fit in 32 bits -> V"),
    (FLOAT_OPEN, float("nan"), K.FLOAT_WRONG_TYPE, "data type is not float -> V"),
    (DOUBLE, 180.01, K.FLOAT_OUT_OF_RANGE, "double value 180.01 is bigger than max 180 -> V"),
    (DOUBLE, [1.0], K.FLOAT_WRONG_TYPE, "data type is not double -> V"),
    (DOUBLE_OPEN, float("inf"), K.FLOAT_WRONG_TYPE, "data type is not double -> V"),
    (TEXT, "abcdef", K.TEXT_TOO_LONG, "string length 6 bigger than max length 5 -> V"),
    (TEXT, 0, K.TEXT_WRONG_TYPE, "data type is not string -> V"),
    (
        TEXT_OPEN,
        "x" * 10241,
        K.TEXT_TOO_LONG,
        "string length 10241 bigger than max length 10240 -> V",
    ),
    (DATE, "2024-01-01", K.DATE_WRONG_TYPE, "date type must be a string of long(UTC ms) -> V"),
    (DATE, -1, K.DATE_WRONG_TYPE, "date type must be a string of long(UTC ms) -> V"),
    (DATE, 1.7e12, K.DATE_WRONG_TYPE, "date type must be a string of long(UTC ms) -> V"),
    (DATE, "", K.DATE_WRONG_TYPE, "date type must be a string of long(UTC ms) -> V"),
    # Full-width digits are digits to str.isdigit, but not to Alibaba.
    (DATE, "\uff11\uff12", K.DATE_WRONG_TYPE, "date type must be a string of long(UTC ms) -> V"),
    (BOOL, 2, K.BOOL_OUT_OF_RANGE, "bool value must be 0 or 1, not 2 -> V"),
    (BOOL, True, K.BOOL_WRONG_TYPE, "value of bool type must be int -> V"),
    (BOOL, "1", K.BOOL_WRONG_TYPE, "value of bool type must be int -> V"),
    (ENUM, 1, K.ENUM_NOT_A_KEY, "enum value 1 not in [0, 2, -1] -> V"),
    (ENUM, "2", K.ENUM_WRONG_TYPE, "value of enum type must be int -> V"),
    (ENUM, 2.0, K.ENUM_WRONG_TYPE, "value of enum type must be int -> V"),
    (STRUCT, [1], K.STRUCT_WRONG_TYPE, "struct type must be json object -> V"),
    (STRUCT, {"a": 1, "c": 2}, K.UNKNOWN_IDENTIFIER, "params not exist -> V.c"),
    (STRUCT, {"a": 1000}, K.INT_OUT_OF_RANGE, "int value 1000 is bigger than max 100 -> V.a"),
    (STRUCT, {"b": "toolong"}, K.TEXT_TOO_LONG, "string length 7 bigger than max length 5 -> V.b"),
    (ARRAY_INT, [1, 2, 3, 4], K.ARRAY_TOO_LONG, "array size 4 is bigger than max size 3 -> V"),
    (ARRAY_INT, {"0": 1}, K.ARRAY_WRONG_TYPE, "data type is not array -> V"),
    (ARRAY_INT, [1, "2"], K.INT_WRONG_TYPE, "data type is not int -> V[1]"),
    (
        ARRAY_DOUBLE,
        [0, 200],
        K.FLOAT_OUT_OF_RANGE,
        "double value 200 is bigger than max 180 -> V[1]",
    ),
    (ARRAY_TEXT, ["ok", 5], K.TEXT_WRONG_TYPE, "data type is not string -> V[1]"),
    (ARRAY_STRUCT, [{"a": 1}, {"a": "x"}], K.INT_WRONG_TYPE, "data type is not int -> V[1].a"),
    (ARRAY_STRUCT, [{"z": 1}], K.UNKNOWN_IDENTIFIER, "params not exist -> V[0].z"),
    (ARRAY_STRUCT, [3], K.STRUCT_WRONG_TYPE, "struct type must be json object -> V[0]"),
]


@pytest.mark.parametrize(("data_type", "value"), GOOD)
def test_good_values_pass_post_and_set(data_type: dict[str, Any], value: Any) -> None:
    model = _one_type(data_type)
    assert model.check_property_post({"V": value}) == []
    assert model.check_property_post({"V": {"value": value, "time": 1700000000000}}) == []
    assert model.check_property_set({"V": value}) == []


@pytest.mark.parametrize(("data_type", "value", "kind", "message"), BAD)
def test_bad_values_are_named_with_their_kind(
    data_type: dict[str, Any], value: Any, kind: ProblemKind, message: str
) -> None:
    model = _one_type(data_type)
    expected = [Problem(kind=kind, identifier="V", message=f"tsl parse: {message}")]
    assert model.check_property_post({"V": value}) == expected
    assert model.check_property_post({"V": {"value": value, "time": "1700000000000"}}) == expected
    assert model.check_property_set({"V": value}) == expected


@pytest.mark.parametrize("params", [{}, [], None, "LightSwitch", 1])
def test_property_post_params_must_be_a_non_empty_object(params: Any) -> None:
    assert _kinds(LIGHT.check_property_post(params)) == [K.INVALID]
    assert _kinds(LIGHT.check_property_set(params)) == [K.INVALID]


def test_property_post_real_message_every_problem_reported() -> None:
    params = {
        "LightSwitch": 1,
        "Brightness": {"value": 80, "time": 1524448722000},
        "Voltage": 220.5,
        "Energy": 12345.67,
        "GeoLocation": {"Longitude": 120.1, "Latitude": 30.2, "CoordinateSystem": 1},
        "PhaseVoltages": [220, 221, 219],
        "Colour": "red",
        "WorkMode": 7,
    }
    assert LIGHT.check_property_post(params) == [
        Problem(
            kind=K.UNKNOWN_IDENTIFIER,
            identifier="Colour",
            message="tsl parse: params not exist -> Colour",
        ),
        Problem(
            kind=K.ENUM_NOT_A_KEY,
            identifier="WorkMode",
            message="tsl parse: enum value 7 not in [0, 1, 2] -> WorkMode",
        ),
    ]


@pytest.mark.parametrize("stamp", [-1, "soon", 1.5, None])
def test_property_post_time_must_be_milliseconds(stamp: Any) -> None:
    problems = LIGHT.check_property_post({"Brightness": {"value": 10, "time": stamp}})
    assert _kinds(problems) == [K.INVALID]
    assert problems[0].identifier == "Brightness"


def test_struct_with_a_value_member_is_not_read_as_a_stamped_value() -> None:
    member = {"identifier": "value", "name": "v", "dataType": INT}
    model = _one_type({"type": "struct", "specs": [member]})
    assert model.check_property_post({"V": {"value": 5}}) == []
    assert _kinds(model.check_property_post({"V": {"value": 5, "time": 1}})) == [
        K.UNKNOWN_IDENTIFIER
    ]


@pytest.mark.parametrize(
    ("params", "kinds"),
    [
        ({"SpO2LowThreshold": 90, "PatientId": "P-0042"}, []),
        ({"SpO2LowThreshold": 60}, [K.INT_OUT_OF_RANGE]),
        ({"SpO2": 97}, [K.READ_ONLY]),
        ({"PulseRate": 80, "Nope": 1}, [K.READ_ONLY, K.UNKNOWN_IDENTIFIER]),
    ],
)
def test_property_set_only_rw_properties(params: dict[str, Any], kinds: list[ProblemKind]) -> None:
    assert _kinds(OXIMETER.check_property_set(params)) == kinds
    assert _kinds(OXIMETER.check_service_input("set", params)) == kinds


def test_read_only_property_set_message_says_so() -> None:
    (problem,) = OXIMETER.check_property_set({"SpO2": 97})
    assert problem.message == "tsl parse: property is read-only and cannot be set -> SpO2"


@pytest.mark.parametrize(
    ("identifier", "params", "kinds"),
    [
        ("LowSpO2Alert", {"SpO2": 85, "Threshold": 90, "MeasuredAt": "1700000000000"}, []),
        ("LowSpO2Alert", {"value": {"SpO2": 85, "Threshold": 90}, "time": 1700000000000}, []),
        ("LowSpO2Alert", {"value": {"SpO2": 185}}, [K.INT_OUT_OF_RANGE]),
        ("LowSpO2Alert", {"SpO2": 85, "Threshold": 50}, [K.INT_OUT_OF_RANGE]),
        ("LowSpO2Alert", {"SpO2": 85, "Pulse": 60}, [K.UNKNOWN_IDENTIFIER]),
        ("LowSpO2Alert", {"value": {"SpO2": 85}, "time": "yesterday"}, [K.INVALID]),
        ("LowSpO2Alert", [85], [K.INVALID]),
        ("SensorError", {"ErrorCode": 2}, []),
        ("SensorError", {"ErrorCode": 9}, [K.ENUM_NOT_A_KEY]),
        ("SensorError", {}, []),
        ("Fainted", {"SpO2": 50}, [K.UNKNOWN_CALL]),
        ("post", {"SpO2": 97, "PulseRate": 72}, []),
        ("post", {"SpO2": {"value": 101, "time": 1}}, [K.INT_OUT_OF_RANGE]),
    ],
)
def test_event_post(identifier: str, params: Any, kinds: list[ProblemKind]) -> None:
    assert _kinds(OXIMETER.check_event_post(identifier, params)) == kinds


def test_an_unknown_event_is_named() -> None:
    (problem,) = OXIMETER.check_event_post("Fainted", {})
    assert problem == Problem(
        kind=K.UNKNOWN_CALL, identifier="Fainted", message="tsl parse: no such event -> Fainted"
    )


SCHEDULE = [{"OnTime": "18:30", "OffTime": "06:00", "Brightness": 80}]


@pytest.mark.parametrize(
    ("identifier", "params", "kinds"),
    [
        ("SetSchedule", {"Schedule": SCHEDULE, "StartDate": "1700000000000"}, []),
        ("SetSchedule", {"Schedule": SCHEDULE * 9}, [K.ARRAY_TOO_LONG]),
        ("SetSchedule", {"Schedule": [{"OnTime": "18:30:00"}]}, [K.TEXT_TOO_LONG]),
        ("SetSchedule", {"Schedule": [{"Brightness": 101}]}, [K.INT_OUT_OF_RANGE]),
        ("SetSchedule", {"Schedule": SCHEDULE, "Repeat": True}, [K.UNKNOWN_IDENTIFIER]),
        ("SetSchedule", "18:30", [K.INVALID]),
        ("Reboot", {}, []),
        ("Reboot", {"Now": 1}, [K.UNKNOWN_IDENTIFIER]),
        ("get", ["LightSwitch", "Brightness"], []),
        ("get", ["LightSwitch", "Colour"], [K.UNKNOWN_IDENTIFIER]),
        ("get", {"LightSwitch": 1}, [K.INVALID]),
        ("set", {"Brightness": 50, "WorkMode": 1}, []),
        ("set", {"Voltage": 230.0}, [K.READ_ONLY]),
        ("Explode", {}, [K.UNKNOWN_CALL]),
    ],
)
def test_service_input(identifier: str, params: Any, kinds: list[ProblemKind]) -> None:
    assert _kinds(LIGHT.check_service_input(identifier, params)) == kinds


@pytest.mark.parametrize(
    ("identifier", "data", "kinds"),
    [
        ("SetSchedule", {"Accepted": 1}, []),
        ("SetSchedule", {"Accepted": 9}, [K.INT_OUT_OF_RANGE]),
        ("SetSchedule", {"Rejected": 0}, [K.UNKNOWN_IDENTIFIER]),
        ("SetSchedule", None, [K.INVALID]),
        ("set", {}, []),
        ("set", {"Brightness": 5}, [K.UNKNOWN_IDENTIFIER]),
        ("get", {"LightSwitch": 1, "Voltage": 229.5, "GeoLocation": {"Latitude": 30.2}}, []),
        ("get", {"Voltage": "229.5"}, [K.FLOAT_WRONG_TYPE]),
        ("get", {"Colour": "red"}, [K.UNKNOWN_IDENTIFIER]),
        ("get", [], [K.INVALID]),
        ("Reboot", {}, []),
        ("Explode", {}, [K.UNKNOWN_CALL]),
    ],
)
def test_service_output(identifier: str, data: Any, kinds: list[ProblemKind]) -> None:
    assert _kinds(LIGHT.check_service_output(identifier, data)) == kinds


def test_model_without_generated_services_still_checks_set_and_get() -> None:
    document = json.loads((DATA / "oximeter.json").read_text(encoding="utf-8"))
    document["services"] = []
    model = ThingModel.from_json(document)
    assert model.check_service_input("set", {"SpO2LowThreshold": 80}) == []
    assert model.check_service_input("get", ["SpO2"]) == []
    assert model.check_service_output("set", {}) == []
    assert _kinds(model.check_service_input("StartMeasurement", {})) == [K.UNKNOWN_CALL]


_scalars = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.none(),
    st.sampled_from([0, 1, 2, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 3.4e38, 3.5e38]),
)
_QUICK_TYPES = [
    NumberType(type="int"),
    NumberType(type="int", min=0, max=100),
    NumberType(type="int", min=-5.5, max=1e12),
    NumberType(type="float"),
    NumberType(type="float", min=-1.5, max=2.5),
    NumberType(type="double"),
    NumberType(type="double", min=0, max=1e300),
    BoolType(labels={"0": "off", "1": "on"}),
    EnumType(labels={"0": "a", "2": "b", "-1": "c", "01": "d"}),
    TextType(length=3),
    TextType(),
]


@pytest.mark.parametrize("data_type", _QUICK_TYPES, ids=repr)
@given(value=_scalars)
def test_the_quick_check_agrees_with_check_value(data_type: Any, value: Any) -> None:
    """The quick form may only say yes where check_value finds nothing wrong, and says no
    where it does (so the slow path is taken only for refusals)."""
    quick = quick_check(data_type)
    assert quick is not None
    assert quick(value) == (check_value(data_type, value, "x") is None)
