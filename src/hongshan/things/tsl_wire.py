"""Reading and writing the TSL JSON document (the layout is drawn in ``tsl``'s docstring).

Reading is strict about what Alibaba defines and lenient about the rest: a wrong type, a missing
``identifier`` or a ``min`` that is not a number raises ``TslError`` with the path; an unknown key
is kept in ``extra`` and written back. Numbers in ``specs`` may be strings (Alibaba) or numbers.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from hongshan.things.tsl_types import (
    INT32_MAX,
    INT32_MIN,
    TEXT_MAX_LENGTH,
    ArrayType,
    BoolType,
    DataType,
    DateType,
    EnumType,
    Event,
    Number,
    NumberType,
    Param,
    Profile,
    Property,
    Service,
    StructType,
    TextType,
    TslError,
    Written,
)

_INTEGER = re.compile(r"[+-]?\d+")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_]{1,50}")
# Alibaba's limits ("Limits", "Device management": TSL features): the elements of an array; the
# features of a TSL module (its properties, events and services, besides the generated post
# event and set and get services); the members of a struct; the values of an enum; the
# parameters of a service (in, out) or an event. Without them a TSL of 20,000 properties or an
# enum of 100,000 values was taken, and checked against every post.
MAX_ARRAY_SIZE = 512
MAX_FEATURES = 300
MAX_STRUCT_MEMBERS = 50
MAX_ENUM_VALUES = 100
MAX_PARAMS = 100
_GENERATED = {"events": {"post"}, "services": {"set", "get"}}  # (they list every property)
_NUMBER_KINDS = ("int", "float", "double")
_TYPES = (*_NUMBER_KINDS, "text", "date", "bool", "enum", "struct", "array")
_ROOT_KEYS = {"schema", "profile", "properties", "events", "services"}
_PROFILE_KEYS = {"productKey", "version"}
_PARAM_KEYS = {"identifier", "name", "dataType", "desc"}
_PROPERTY_KEYS = {"identifier", "name", "accessMode", "required", "desc", "dataType"}
_EVENT_KEYS = {"identifier", "name", "type", "required", "desc", "method", "outputData"}
_SERVICE_KEYS = {"identifier", "name", "callType", "required", "desc", "method"}
_SERVICE_KEYS |= {"inputData", "outputData"}
_NUMBER_SPECS = ("min", "max", "step")


class ModelParts(NamedTuple):
    schema: str | None
    profile: Profile | None
    properties: tuple[Property, ...]
    events: tuple[Event, ...]
    services: tuple[Service, ...]
    extra: dict[str, Any]


# -- reading -----------------------------------------------------------------------------------


def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TslError(path or "(document)", "not a JSON object")
    return value


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise TslError(path, "not a JSON array")
    return value


def _string(obj: dict[str, Any], key: str, path: str) -> str:
    if key not in obj:
        raise TslError(_at(path, key), "missing")
    value = obj[key]
    if not isinstance(value, str):
        raise TslError(_at(path, key), "not a string")
    return value


def _optional_string(obj: dict[str, Any], key: str, path: str) -> str | None:
    return _string(obj, key, path) if key in obj else None


def _optional_flag(obj: dict[str, Any], key: str, path: str) -> bool | None:
    if key not in obj:
        return None
    if not isinstance(obj[key], bool):
        raise TslError(_at(path, key), "not true or false")
    return bool(obj[key])


def _choice(obj: dict[str, Any], key: str, path: str, choices: tuple[str, ...]) -> Any:
    value = _string(obj, key, path)
    if value not in choices:
        raise TslError(_at(path, key), f"{value!r} is not one of {', '.join(choices)}")
    return value


def _identifier(obj: dict[str, Any], path: str) -> str:
    value = _string(obj, "identifier", path)
    if not value:
        raise TslError(_at(path, "identifier"), "empty")
    if not _IDENTIFIER.fullmatch(value):
        # Alibaba's rule for an identifier; it also keeps a formula (=, +, -, @) out of the
        # CSV exports, whose header and cells carry identifiers
        raise TslError(
            _at(path, "identifier"),
            f"{value[:60]!r}: 1 to 50 letters, digits and underscores (Alibaba's rule)",
        )
    return value


def _rest(obj: dict[str, Any], known: set[str]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in known}


def _number(token: Any, path: str) -> Number:
    # bool is an int to Python, but "min": true is not a number in a TSL file.
    if isinstance(token, bool) or not isinstance(token, int | float | str):
        raise TslError(path, "not a number")
    number: Number
    if isinstance(token, str):
        text = token.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            raise TslError(path, "not a number") from None
    else:
        number = token
    if isinstance(number, float) and not math.isfinite(number):
        raise TslError(path, "not a finite number")
    return number


def _count(token: Any, path: str, most: int | None = None) -> int:
    number = _number(token, path)
    if isinstance(number, float) and not number.is_integer():
        raise TslError(path, "not a whole number")
    if number < 1 or (most is not None and number > most):
        raise TslError(path, f"must be 1 to {most}" if most else "must be at least 1")
    return int(number)


def _unique(items: list[Any], path: str, what: str) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.identifier in seen:
            raise TslError(
                _at(_at(path, index), "identifier"), f"duplicate {what} {item.identifier!r}"
            )
        seen.add(item.identifier)


def _params(value: Any, path: str, most: int | None = MAX_PARAMS) -> tuple[Param, ...]:
    raw_params = _array(value, path)
    if most is not None and len(raw_params) > most:
        raise TslError(path, f"{len(raw_params)} parameters: at most {most} (Alibaba's limit)")
    params = [_param(raw, _at(path, i)) for i, raw in enumerate(raw_params)]
    _unique(params, path, "identifier")
    return tuple(params)


def _param(raw: Any, path: str) -> Param:
    obj = _object(raw, path)
    return Param(
        identifier=_identifier(obj, path),
        name=_string(obj, "name", path),
        data_type=_data_type(obj, path),
        desc=_optional_string(obj, "desc", path),
        extra=_rest(obj, _PARAM_KEYS),
    )


def _data_type(owner: dict[str, Any], owner_path: str, key: str = "dataType") -> DataType:
    path = _at(owner_path, key)
    if key not in owner:
        raise TslError(path, "missing")
    obj = _object(owner[key], path)
    kind = obj.get("type")
    if kind not in _TYPES:
        raise TslError(_at(path, "type"), f"unknown data type {kind!r}")
    has_specs = "specs" in obj
    specs_path = _at(path, "specs")
    extra = _rest(obj, {"type", "specs"})
    if kind in ("struct", "bool", "enum", "array") and not has_specs:
        raise TslError(specs_path, "missing")
    specs = obj.get("specs", {})
    if kind == "struct":
        members = _params(specs, specs_path, MAX_STRUCT_MEMBERS)
        if not members:
            raise TslError(specs_path, "a struct needs at least one member")
        return StructType(members=members, extra=extra)
    specs = _object(specs, specs_path)
    if kind in _NUMBER_KINDS:
        return _number_type(kind, specs, specs_path, has_specs, extra)
    if kind == "text":
        written = {k: specs[k] for k in ("length",) if k in specs}
        length = None
        if "length" in specs:
            length = _count(specs["length"], _at(specs_path, "length"), TEXT_MAX_LENGTH)
        return TextType(
            length=length,
            written=written,
            specs_extra=_rest(specs, {"length"}),
            has_specs=has_specs,
            extra=extra,
        )
    if kind == "date":
        return DateType(specs_extra=dict(specs), has_specs=has_specs, extra=extra)
    if kind == "bool":
        if set(specs) != {"0", "1"}:
            raise TslError(specs_path, 'a bool needs exactly the labels "0" and "1"')
        return BoolType(labels=_labels(specs, specs_path), extra=extra)
    if kind == "enum":
        if not specs:
            raise TslError(specs_path, "an enum needs at least one value")
        if len(specs) > MAX_ENUM_VALUES:
            raise TslError(
                specs_path, f"{len(specs)} values: at most {MAX_ENUM_VALUES} (Alibaba's limit)"
            )
        for value in specs:
            if not _INTEGER.fullmatch(value):
                raise TslError(_at(specs_path, value), "an enum value must be an integer")
        return EnumType(labels=_labels(specs, specs_path), extra=extra)
    return _array_type(specs, specs_path, extra)


def _labels(specs: dict[str, Any], path: str) -> dict[str, str]:
    for key, label in specs.items():
        if not isinstance(label, str):
            raise TslError(_at(path, key), "a label must be a string")
    return dict(specs)


def _number_type(
    kind: Any, specs: dict[str, Any], path: str, has_specs: bool, extra: dict[str, Any]
) -> NumberType:
    written: dict[str, Written] = {k: specs[k] for k in _NUMBER_SPECS if k in specs}
    bounds: dict[str, Number] = {k: _number(v, _at(path, k)) for k, v in written.items()}
    if kind == "int":
        for key in ("min", "max"):
            if key not in bounds:
                continue
            value = bounds[key]
            if isinstance(value, float):
                if not value.is_integer():
                    raise TslError(_at(path, key), "not an integer")
                bounds[key] = value = int(value)
            if not INT32_MIN <= value <= INT32_MAX:
                raise TslError(_at(path, key), "outside the int32 range")
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise TslError(_at(path, "min"), "bigger than max")
    if bounds.get("step", 0) < 0:
        raise TslError(_at(path, "step"), "negative")
    return NumberType(
        type=kind,
        min=bounds.get("min"),
        max=bounds.get("max"),
        step=bounds.get("step"),
        unit=_optional_string(specs, "unit", path),
        unit_name=_optional_string(specs, "unitName", path),
        written=written,
        specs_extra=_rest(specs, {*_NUMBER_SPECS, "unit", "unitName"}),
        has_specs=has_specs,
        extra=extra,
    )


def _array_type(specs: dict[str, Any], path: str, extra: dict[str, Any]) -> ArrayType:
    if "size" not in specs:
        raise TslError(_at(path, "size"), "missing")
    item = _data_type(specs, path, "item")
    if isinstance(item, ArrayType):
        raise TslError(_at(_at(path, "item"), "type"), "an array cannot hold arrays")
    return ArrayType(
        size=_count(specs["size"], _at(path, "size"), MAX_ARRAY_SIZE),
        item=item,
        written={"size": specs["size"]},
        specs_extra=_rest(specs, {"size", "item"}),
        extra=extra,
    )


def _property(raw: Any, path: str) -> Property:
    obj = _object(raw, path)
    return Property(
        identifier=_identifier(obj, path),
        name=_string(obj, "name", path),
        access_mode=_choice(obj, "accessMode", path, ("r", "rw")),
        data_type=_data_type(obj, path),
        required=_optional_flag(obj, "required", path),
        desc=_optional_string(obj, "desc", path),
        extra=_rest(obj, _PROPERTY_KEYS),
    )


def _event(raw: Any, path: str) -> Event:
    obj = _object(raw, path)
    identifier = _identifier(obj, path)
    most = None if identifier in _GENERATED["events"] else MAX_PARAMS
    return Event(
        identifier=identifier,
        name=_string(obj, "name", path),
        type=_choice(obj, "type", path, ("info", "alert", "error")),
        output_data=_params(obj.get("outputData", []), _at(path, "outputData"), most),
        method=_optional_string(obj, "method", path),
        required=_optional_flag(obj, "required", path),
        desc=_optional_string(obj, "desc", path),
        extra=_rest(obj, _EVENT_KEYS),
    )


def _service(raw: Any, path: str) -> Service:
    obj = _object(raw, path)
    identifier = _identifier(obj, path)
    most = None if identifier in _GENERATED["services"] else MAX_PARAMS
    input_path = _at(path, "inputData")
    raw_input = _array(obj.get("inputData", []), input_path)
    input_data: tuple[Param, ...] = ()
    names: tuple[str, ...] = ()
    # Alibaba's generated "get" service lists property identifiers instead of parameters.
    if raw_input and all(isinstance(item, str) for item in raw_input):
        names = tuple(raw_input)
    else:
        input_data = _params(raw_input, input_path, most)
    return Service(
        identifier=identifier,
        name=_string(obj, "name", path),
        call_type=_choice(obj, "callType", path, ("async", "sync")),
        input_data=input_data,
        input_identifiers=names,
        output_data=_params(obj.get("outputData", []), _at(path, "outputData"), most),
        method=_optional_string(obj, "method", path),
        required=_optional_flag(obj, "required", path),
        desc=_optional_string(obj, "desc", path),
        extra=_rest(obj, _SERVICE_KEYS),
    )


def parse_model(document: Any) -> ModelParts:
    """Read a TSL document (already decoded from JSON) into its parts, or raise ``TslError``."""
    root = _object(document, "")
    profile = None
    if "profile" in root:
        raw = _object(root["profile"], "profile")
        profile = Profile(
            product_key=_string(raw, "productKey", "profile"),
            version=_optional_string(raw, "version", "profile"),
            extra=_rest(raw, _PROFILE_KEYS),
        )
    lists: dict[str, list[Any]] = {}
    for key in ("properties", "events", "services"):
        lists[key] = _array(root.get(key, []), key)
    features = sum(
        1
        for key, found in lists.items()
        for raw in found
        if not (isinstance(raw, dict) and raw.get("identifier") in _GENERATED.get(key, ()))
    )
    if features > MAX_FEATURES:
        raise TslError(
            "(document)",
            f"{features} properties, events and services: at most {MAX_FEATURES} "
            "(Alibaba's limit for a TSL module)",
        )
    properties = [_property(raw, _at("properties", i)) for i, raw in enumerate(lists["properties"])]
    events = [_event(raw, _at("events", i)) for i, raw in enumerate(lists["events"])]
    services = [_service(raw, _at("services", i)) for i, raw in enumerate(lists["services"])]
    _unique(properties, "properties", "property")
    _unique(events, "events", "event")
    _unique(services, "services", "service")
    return ModelParts(
        schema=_optional_string(root, "schema", ""),
        profile=profile,
        properties=tuple(properties),
        events=tuple(events),
        services=tuple(services),
        extra=_rest(root, _ROOT_KEYS),
    )


# -- writing -----------------------------------------------------------------------------------


def _token(value: Number, written: Written | None) -> Written:
    # Write a spec back as the file wrote it, unless the value was changed since; a new value is
    # written the way Alibaba's console does, as a string.
    if written is not None:
        try:
            if _number(written, "") == value:
                return written
        except TslError:
            pass
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def dump_data_type(data_type: DataType) -> dict[str, Any]:
    specs: Any
    match data_type:
        case NumberType():
            specs = {}
            for key in _NUMBER_SPECS:
                value = getattr(data_type, key)
                if value is not None:
                    specs[key] = _token(value, data_type.written.get(key))
            if data_type.unit is not None:
                specs["unit"] = data_type.unit
            if data_type.unit_name is not None:
                specs["unitName"] = data_type.unit_name
            specs.update(data_type.specs_extra)
        case TextType():
            specs = {}
            if data_type.length is not None:
                specs["length"] = _token(data_type.length, data_type.written.get("length"))
            specs.update(data_type.specs_extra)
        case DateType():
            specs = dict(data_type.specs_extra)
        case BoolType() | EnumType():
            specs = dict(data_type.labels)
        case StructType():
            specs = [dump_param(member) for member in data_type.members]
        case ArrayType():
            specs = {
                "size": _token(data_type.size, data_type.written.get("size")),
                "item": dump_data_type(data_type.item),
                **data_type.specs_extra,
            }
    out: dict[str, Any] = {"type": data_type.type}
    if specs or data_type.has_specs:
        out["specs"] = specs
    out.update(data_type.extra)
    return out


def _common(item: Param | Property | Event | Service) -> dict[str, Any]:
    return {"identifier": item.identifier, "name": item.name}


def _tail(out: dict[str, Any], item: Property | Event | Service) -> dict[str, Any]:
    if item.required is not None:
        out["required"] = item.required
    if item.desc is not None:
        out["desc"] = item.desc
    if not isinstance(item, Property) and item.method is not None:
        out["method"] = item.method
    out.update(item.extra)
    return out


def dump_param(param: Param) -> dict[str, Any]:
    out = _common(param)
    out["dataType"] = dump_data_type(param.data_type)
    if param.desc is not None:
        out["desc"] = param.desc
    out.update(param.extra)
    return out


def dump_model(parts: ModelParts) -> dict[str, Any]:
    """The TSL document for ``parts``, ready for ``json.dumps``."""
    out: dict[str, Any] = {}
    if parts.schema is not None:
        out["schema"] = parts.schema
    if parts.profile is not None:
        profile: dict[str, Any] = {}
        if parts.profile.version is not None:
            profile["version"] = parts.profile.version
        profile["productKey"] = parts.profile.product_key
        out["profile"] = profile | parts.profile.extra
    out["properties"] = [
        _tail(
            _common(p) | {"accessMode": p.access_mode, "dataType": dump_data_type(p.data_type)}, p
        )
        for p in parts.properties
    ]
    out["events"] = [
        _tail(
            _common(e) | {"type": e.type, "outputData": [dump_param(o) for o in e.output_data]}, e
        )
        for e in parts.events
    ]
    services = []
    for s in parts.services:
        inputs: list[Any] = list(s.input_identifiers) or [dump_param(p) for p in s.input_data]
        body = {
            "callType": s.call_type,
            "inputData": inputs,
            "outputData": [dump_param(o) for o in s.output_data],
        }
        services.append(_tail(_common(s) | body, s))
    out["services"] = services
    out.update(parts.extra)
    return out
