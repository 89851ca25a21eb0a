"""Thing models: import and export of Alibaba TSL files, and malformed files refused by path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from hongshan.errors import HongshanError
from hongshan.things.tsl import (
    ArrayType,
    BoolType,
    DateType,
    EnumType,
    NumberType,
    StructType,
    TextType,
    ThingModel,
    TslError,
)

DATA = Path(__file__).parent / "data"
FILES = ["streetlight.json", "oximeter.json"]

# A hand-written file in the other dialect: numbers as numbers, keys Alibaba added later
# (functionBlockId on module models, expands on properties), an array item without specs.
HAND_WRITTEN: dict[str, Any] = {
    "schema": "https://iotx-tsl.oss-ap-southeast-1.aliyuncs.com/schema.json",
    "profile": {"productKey": "a1Module001", "deviceName": "lamp-7"},
    "functionBlockId": "Meter",
    "functionBlockName": "电表模块",
    "properties": [
        {
            "identifier": "Current",
            "name": "电流",
            "accessMode": "r",
            "required": False,
            "expands": {"storage": "ts"},
            "dataType": {"type": "float", "specs": {"min": 0, "max": 9.5, "step": 0.1}},
        },
        {
            "identifier": "Samples",
            "name": "采样",
            "accessMode": "r",
            "dataType": {"type": "array", "specs": {"size": 10, "item": {"type": "double"}}},
        },
    ],
    "events": [],
    "services": [],
}


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("name", FILES)
def test_import_export_round_trip_from_text(name: str) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    assert ThingModel.from_json(text).to_json() == json.loads(text)
    assert ThingModel.from_json(text.encode()).to_json() == json.loads(text)


def test_round_trip_keeps_numbers_as_written_and_unknown_keys() -> None:
    exported = ThingModel.from_json(copy.deepcopy(HAND_WRITTEN)).to_json()
    assert exported == HAND_WRITTEN
    assert exported["properties"][0]["dataType"]["specs"]["max"] == 9.5


@pytest.mark.parametrize("name", FILES)
def test_export_is_stable_and_json_serialisable(name: str) -> None:
    once = ThingModel.from_json(load(name)).to_json()
    assert ThingModel.from_json(json.dumps(once)).to_json() == once


def test_import_does_not_alias_or_mutate_the_input() -> None:
    document = load("streetlight.json")
    before = copy.deepcopy(document)
    ThingModel.from_json(document)
    assert document == before


def test_streetlight_model_reads_every_type() -> None:
    model = ThingModel.from_json(load("streetlight.json"))
    assert model.profile is not None and model.profile.product_key == "a1StLight01"
    types = {p.identifier: p.data_type for p in model.properties}
    assert types["LightSwitch"] == BoolType(labels={"0": "关闭", "1": "开启"})
    brightness = types["Brightness"]
    assert isinstance(brightness, NumberType)
    assert (brightness.type, brightness.min, brightness.max, brightness.step) == ("int", 0, 100, 1)
    assert (brightness.unit, brightness.unit_name) == ("%", "百分比")
    voltage = types["Voltage"]
    assert isinstance(voltage, NumberType) and voltage.step == pytest.approx(0.1)
    assert isinstance(types["WorkMode"], EnumType)
    assert isinstance(types["DeviceTime"], DateType)
    assert isinstance(types["ManufacturerName"], TextType)
    assert types["ManufacturerName"].length == 256
    geo = types["GeoLocation"]
    assert isinstance(geo, StructType)
    assert [m.identifier for m in geo.members][:2] == ["Longitude", "Latitude"]
    phases = types["PhaseVoltages"]
    assert isinstance(phases, ArrayType) and phases.size == 3
    assert isinstance(phases.item, NumberType) and not phases.item.has_specs
    post = model.event_map["post"]
    assert (post.method, post.type) == ("thing.event.property.post", "info")
    assert model.event_map["LampFault"].type == "alert"
    assert model.service_map["set"].method == "thing.service.property.set"
    assert model.service_map["get"].input_identifiers[0] == "LightSwitch"
    assert model.service_map["Reboot"].call_type == "sync"
    schedule = model.service_map["SetSchedule"].input_data[0].data_type
    assert isinstance(schedule, ArrayType) and isinstance(schedule.item, StructType)


def test_changed_spec_is_written_in_alibabas_form() -> None:
    import msgspec

    model = ThingModel.from_json(load("oximeter.json"))
    spo2 = model.properties[0]
    assert isinstance(spo2.data_type, NumberType)
    lowered = msgspec.structs.replace(spo2.data_type, max=99)
    changed = msgspec.structs.replace(
        model, properties=(msgspec.structs.replace(spo2, data_type=lowered),)
    )
    assert changed.to_json()["properties"][0]["dataType"]["specs"]["max"] == "99"


def test_tsl_error_is_a_hongshan_error_with_the_path() -> None:
    with pytest.raises(HongshanError) as info:
        ThingModel.from_json("{")
    assert isinstance(info.value, TslError)
    assert str(info.value).startswith("(document): not JSON")


def _prop(data_type: Any, **extra: Any) -> dict[str, Any]:
    return {"identifier": "P", "name": "p", "accessMode": "rw", "dataType": data_type, **extra}


def _doc(*properties: dict[str, Any], **root: Any) -> dict[str, Any]:
    return {"profile": {"productKey": "a1"}, "properties": list(properties), **root}


def _num(kind: str, **specs: Any) -> dict[str, Any]:
    return {"type": kind, "specs": specs}


OK_INT = _num("int", min="0", max="10")

MALFORMED = [
    ([], "(document): not a JSON object"),
    ({"properties": {}}, "properties: not a JSON array"),
    ({"profile": []}, "profile: not a JSON object"),
    ({"profile": {"version": "1.0"}}, "profile.productKey: missing"),
    ({"schema": 1}, "schema: not a string"),
    (_doc({**_prop(OK_INT), "identifier": ""}), "properties[0].identifier: empty"),
    (
        _doc({"name": "p", "accessMode": "r", "dataType": OK_INT}),
        "properties[0].identifier: missing",
    ),
    (_doc(_prop(OK_INT, name=3)), "properties[0].name: not a string"),
    (_doc(_prop(OK_INT, accessMode="w")), "properties[0].accessMode: 'w' is not one of r, rw"),
    (_doc(_prop(OK_INT, required="yes")), "properties[0].required: not true or false"),
    (_doc(_prop(OK_INT), _prop(OK_INT)), "properties[1].identifier: duplicate property 'P'"),
    (_doc({"identifier": "P", "name": "p", "accessMode": "r"}), "properties[0].dataType: missing"),
    (_doc(_prop({"type": "long"})), "properties[0].dataType.type: unknown data type 'long'"),
    (_doc(_prop([])), "properties[0].dataType: not a JSON object"),
    (_doc(_prop(_num("int", min="zero"))), "properties[0].dataType.specs.min: not a number"),
    (_doc(_prop(_num("int", max=True))), "properties[0].dataType.specs.max: not a number"),
    (_doc(_prop(_num("int", min="0.5"))), "properties[0].dataType.specs.min: not an integer"),
    (_doc(_prop(_num("int", max="2147483648"))), "properties[0].dataType.specs.max: outside"),
    (_doc(_prop(_num("float", min="5", max="1"))), "properties[0].dataType.specs.min: bigger"),
    (_doc(_prop(_num("double", max="inf"))), "properties[0].dataType.specs.max: not a finite"),
    (_doc(_prop(_num("double", step="-1"))), "properties[0].dataType.specs.step: negative"),
    (_doc(_prop(_num("float", unit=5))), "properties[0].dataType.specs.unit: not a string"),
    (_doc(_prop({"type": "int", "specs": []})), "properties[0].dataType.specs: not a JSON object"),
    (_doc(_prop(_num("text", length="0"))), "properties[0].dataType.specs.length: must be 1 to"),
    (_doc(_prop(_num("text", length="10241"))), "properties[0].dataType.specs.length: must be"),
    (_doc(_prop(_num("text", length="1.5"))), "properties[0].dataType.specs.length: not a whole"),
    (_doc(_prop({"type": "bool"})), "properties[0].dataType.specs: missing"),
    (_doc(_prop(_num("bool", **{"0": "off"}))), "properties[0].dataType.specs: a bool needs"),
    (_doc(_prop(_num("bool", **{"0": "off", "1": 1}))), "properties[0].dataType.specs.1: a label"),
    (_doc(_prop(_num("enum"))), "properties[0].dataType.specs: an enum needs"),
    (_doc(_prop(_num("enum", on="1"))), "properties[0].dataType.specs.on: an enum value must"),
    (_doc(_prop({"type": "struct", "specs": []})), "properties[0].dataType.specs: a struct needs"),
    (
        _doc(_prop({"type": "struct", "specs": {}})),
        "properties[0].dataType.specs: not a JSON array",
    ),
    (
        _doc(_prop({"type": "struct", "specs": [{"identifier": "a", "name": "a"}]})),
        "properties[0].dataType.specs[0].dataType: missing",
    ),
    (
        _doc(
            _prop(
                {
                    "type": "struct",
                    "specs": [{"identifier": "a", "name": "a", "dataType": OK_INT}] * 2,
                }
            )
        ),
        "properties[0].dataType.specs[1].identifier: duplicate identifier 'a'",
    ),
    (
        _doc(_prop(_num("array", item={"type": "int"}))),
        "properties[0].dataType.specs.size: missing",
    ),
    (
        _doc(_prop(_num("array", size="0", item={"type": "int"}))),
        "properties[0].dataType.specs.size: must be 1 to 512",
    ),
    (_doc(_prop(_num("array", size="2"))), "properties[0].dataType.specs.item: missing"),
    (
        _doc(_prop(_num("array", size="2", item=_num("int", min="x")))),
        "properties[0].dataType.specs.item.specs.min: not a number",
    ),
    (
        _doc(_prop(_num("array", size="2", item=_num("array", size="2", item={"type": "int"})))),
        "properties[0].dataType.specs.item.type: an array cannot hold arrays",
    ),
    (_doc(events=[{"identifier": "E", "name": "e", "type": "warn"}]), "events[0].type: 'warn'"),
    (
        _doc(events=[{"identifier": "E", "name": "e", "type": "info", "outputData": [1]}]),
        "events[0].outputData[0]: not a JSON object",
    ),
    (
        _doc(events=[{"identifier": "E", "name": "e", "type": "info"}] * 2),
        "events[1].identifier: duplicate event 'E'",
    ),
    (
        _doc(services=[{"identifier": "S", "name": "s", "callType": "later"}]),
        "services[0].callType: 'later' is not one of async, sync",
    ),
    (
        _doc(services=[{"identifier": "S", "name": "s", "callType": "sync", "inputData": {}}]),
        "services[0].inputData: not a JSON array",
    ),
    (
        _doc(services=[{"identifier": "S", "name": "s", "callType": "sync", "method": 7}]),
        "services[0].method: not a string",
    ),
]


@pytest.mark.parametrize(("document", "expected"), MALFORMED)
def test_malformed_tsl_is_refused_naming_the_path(document: Any, expected: str) -> None:
    with pytest.raises(TslError) as info:
        ThingModel.from_json(document)
    assert str(info.value).startswith(expected)


def test_malformed_path_deep_in_a_real_file() -> None:
    document = load("streetlight.json")
    document["properties"][3]["dataType"]["specs"]["min"] = "low"
    with pytest.raises(TslError) as info:
        ThingModel.from_json(document)
    assert str(info.value) == "properties[3].dataType.specs.min: not a number"
    assert info.value.path == "properties[3].dataType.specs.min"


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ({"min": "-5", "max": "5"}, (-5, 5)),
        ({"min": -5, "max": 5}, (-5, 5)),
        ({"min": " 1 ", "max": "1e2"}, (1, 100.0)),
        ({"min": "0.5", "max": 2.5}, (0.5, 2.5)),
        ({}, (None, None)),
    ],
)
def test_numeric_specs_accept_strings_and_numbers(specs: Any, expected: Any) -> None:
    model = ThingModel.from_json(_doc(_prop(_num("double", **specs))))
    data_type = model.properties[0].data_type
    assert isinstance(data_type, NumberType)
    assert (data_type.min, data_type.max) == expected


def test_lists_may_be_absent_and_are_exported_empty() -> None:
    model = ThingModel.from_json({"profile": {"productKey": "a1"}})
    assert model.to_json() == {
        "profile": {"productKey": "a1"},
        "properties": [],
        "events": [],
        "services": [],
    }
