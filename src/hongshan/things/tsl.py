"""Alibaba Cloud IoT thing models (TSL): import, export, and checking messages against them.

``ThingModel.from_json`` reads the JSON file a product exports from Alibaba's console ("物模型",
Thing Specification Language) and ``to_json`` writes it back unchanged: every key Alibaba defines
is modelled, anything else is carried along. A malformed file raises ``TslError`` naming the path
of what is wrong (``properties[3].dataType.specs.min: not a number``). The ``check_*`` methods
test a device's or an application's message against the model and return ``Problem``s, each
with its kind (``messages.ProblemKind``, see ``tsl_check``); an empty list means the message
fits.

The format, as Alibaba's documentation ("What is a TSL model", "TSL parameters", "FAQ about TSL
models" with its ``errors.txt`` sample) and its exports show it::

    {"schema": "https://iotx-tsl.oss-ap-southeast-1.aliyuncs.com/schema.json",
     "profile": {"version": "1.0", "productKey": "a1..."},
     "properties": [{"identifier", "name", "accessMode": "r"|"rw", "required", "desc"?,
                     "dataType": {"type", "specs"}}],
     "events": [{"identifier", "name", "type": "info"|"alert"|"error", "required", "method",
                 "outputData": [param]}],
     "services": [{"identifier", "name", "callType": "async"|"sync", "required", "method",
                   "inputData": [param], "outputData": [param]}]}

    specs: int/float/double {"min", "max", "step", "unit", "unitName"} (numbers as strings);
    text {"length"}; date {}; bool {"0": label, "1": label}; enum {"<int>": label, ...};
    struct [param, ...] with param = {"identifier", "name", "dataType"};
    array {"size", "item": {"type", "specs"?}}.

Alibaba generates the ``post`` event (a property post) and the ``set``/``get`` services (a property
set, a read of properties); ``get`` lists property identifiers as its ``inputData``. Real exports
consulted (found by public code search): the smart-streetlight model of product a1hDUAnwB19 kept as
``ModelJson`` in the ``pkg/constants`` of an Alibaba-compatible Go hub (apparently
github.com/shikanon/IoTOrbHub, whose ``pkg/util`` imports it), and a door-lock model in a
living-link SDK document's ``thing_tsl_get`` example.

``TslError`` lives in ``tsl_types`` (so that ``tsl_wire`` can raise it without an import cycle)
and is re-exported here; import it from this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgspec

from hongshan.messages import Problem, ProblemKind
from hongshan.things.tsl_check import check_value, quick_check
from hongshan.things.tsl_types import (
    ArrayType,
    BoolType,
    DataType,
    DateType,
    EnumType,
    Event,
    NumberType,
    Param,
    Profile,
    Property,
    Service,
    StructType,
    TextType,
    TslError,
)
from hongshan.things.tsl_wire import ModelParts, dump_model, parse_model

__all__ = [
    "ArrayType",
    "BoolType",
    "DataType",
    "DateType",
    "EnumType",
    "Event",
    "NumberType",
    "Param",
    "Problem",
    "Profile",
    "Property",
    "Service",
    "StructType",
    "TextType",
    "ThingModel",
    "TslError",
]

# A property post may carry {"value": v, "time": ms} as well as the bare value, and an event
# post {"value": {...outputs}, "time": ms} (Alibaba's forms of a value with the device's time).
_STAMPED_KEYS = frozenset({"value", "time"})


class ThingModel(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """A product's thing model. ``dict=True`` only lets the lookup tables below be cached."""

    schema: str | None = None
    profile: Profile | None = None
    properties: tuple[Property, ...] = ()
    events: tuple[Event, ...] = ()
    services: tuple[Service, ...] = ()
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    # -- import and export ---------------------------------------------------------------------

    @classmethod
    def from_json(cls, source: str | bytes | dict[str, Any]) -> ThingModel:
        """Read a TSL document: JSON text or bytes, or the already decoded object."""
        document: Any = source
        if isinstance(source, str | bytes):
            try:
                document = msgspec.json.decode(source)
            except msgspec.DecodeError as exc:
                raise TslError("(document)", f"not JSON: {exc}") from None
        parts = parse_model(document)
        return cls(
            schema=parts.schema,
            profile=parts.profile,
            properties=parts.properties,
            events=parts.events,
            services=parts.services,
            extra=parts.extra,
        )

    def to_json(self) -> dict[str, Any]:
        """The TSL document; for an imported file, equal to what was imported."""
        parts = ModelParts(
            self.schema, self.profile, self.properties, self.events, self.services, self.extra
        )
        return dump_model(parts)

    # -- lookups -------------------------------------------------------------------------------

    @functools.cached_property
    def property_map(self) -> dict[str, Property]:
        return {p.identifier: p for p in self.properties}

    @functools.cached_property
    def event_map(self) -> dict[str, Event]:
        return {e.identifier: e for e in self.events}

    @functools.cached_property
    def service_map(self) -> dict[str, Service]:
        return {s.identifier: s for s in self.services}

    # -- checking messages ---------------------------------------------------------------------

    def check_property_post(self, params: Any) -> list[Problem]:
        """A device's property post: ``{id: value | {value, time}}``."""
        return self.read_property_post(params)[0]

    def read_property_post(
        self, params: Any
    ) -> tuple[list[Problem], dict[str, Any], dict[str, int]]:
        """Check a property post and take it apart in one pass: (problems, values, the device's
        times in ms where it gave them). The values mean nothing when there are problems."""
        if not isinstance(params, dict) or not params:
            return [_params_invalid("params must be a non-empty object")], {}, {}
        problems = []
        values: dict[str, Any] = {}
        times: dict[str, int] = {}
        quick = self._quick_checks
        for key, raw in params.items():
            found = quick.get(key)
            if found is None:
                problems.append(_not_exist(key))
                continue
            data_type, fits = found
            value = raw
            if type(raw) is dict:
                value, problem = _unstamp(data_type, key, raw)
                if problem is not None:
                    problems.append(problem)
                    continue
            if fits is None or not fits(value):
                problem = _check(data_type, key, value)
                if problem is not None:
                    problems.append(problem)
                    continue
            values[key] = value
            if value is not raw and "time" in raw:
                times[key] = int(raw["time"])
        return problems, values, times

    @functools.cached_property
    def _quick_checks(self) -> dict[str, tuple[DataType, Callable[[Any], bool] | None]]:
        return {p.identifier: (p.data_type, quick_check(p.data_type)) for p in self.properties}

    def check_property_set(self, params: Any) -> list[Problem]:
        """A property set for the device: only ``rw`` properties, bare values."""
        if not isinstance(params, dict) or not params:
            return [_params_invalid("params must be a non-empty object")]
        problems = []
        for key, value in params.items():
            prop = self.property_map.get(key)
            if prop is None:
                problems.append(_not_exist(key))
            elif prop.access_mode != "rw":
                message = f"tsl parse: property is read-only and cannot be set -> {key}"
                problems.append(
                    Problem(kind=ProblemKind.READ_ONLY, identifier=key, message=message)
                )
            else:
                problem = _check(prop.data_type, key, value)
                if problem is not None:
                    problems.append(problem)
        return problems

    def check_event_post(self, identifier: str, params: Any) -> list[Problem]:
        """A device's post of event ``identifier``: its params, bare or ``{value, time}``."""
        if identifier == "post":  # the generated property-post event carries properties
            return self.check_property_post(params)
        event = self.event_map.get(identifier)
        if event is None:
            return [_unknown_call("event", identifier)]
        outputs = {param.identifier for param in event.output_data}
        if (
            isinstance(params, dict)
            and "value" in params
            and params.keys() <= _STAMPED_KEYS
            and "value" not in outputs
        ):
            if "time" in params and not _is_millis(params["time"]):
                return [_params_invalid(f"time must be UTC milliseconds -> {identifier}")]
            params = params["value"]
        return _check_params(event.output_data, params)

    def check_service_input(self, identifier: str, params: Any) -> list[Problem]:
        """The params of a call of service ``identifier`` on the device."""
        if identifier == "set":
            return self.check_property_set(params)
        if identifier == "get":  # its params: a list of property identifiers
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return [_params_invalid("params must be a list of property identifiers")]
            return [_not_exist(p) for p in params if p not in self.property_map]
        service = self.service_map.get(identifier)
        if service is None:
            return [_unknown_call("service", identifier)]
        return _check_params(service.input_data, params)

    def check_service_output(self, identifier: str, data: Any) -> list[Problem]:
        """The ``data`` of a device's reply to service ``identifier``."""
        if identifier == "get":  # the reply carries the current values of properties
            if not isinstance(data, dict):
                return [_params_invalid("data must be an object")]
            problems = []
            for key, value in data.items():
                prop = self.property_map.get(key)
                problem = _not_exist(key) if prop is None else _check(prop.data_type, key, value)
                if problem is not None:
                    problems.append(problem)
            return problems
        service = self.service_map.get(identifier)
        if service is None:
            if identifier == "set":  # a model without the generated service: set replies {}
                return _check_params((), data)
            return [_unknown_call("service", identifier)]
        return _check_params(service.output_data, data)


def _check(data_type: DataType, identifier: str, value: Any) -> Problem | None:
    fault = check_value(data_type, value, identifier)
    if fault is None:
        return None
    return Problem(kind=fault[0], identifier=identifier, message=fault[1])


def _check_params(params: tuple[Param, ...], values: Any) -> list[Problem]:
    if not isinstance(values, dict):
        return [_params_invalid("params must be an object")]
    by_id = {param.identifier: param for param in params}
    problems = []
    for key, value in values.items():
        param = by_id.get(key)
        problem = _not_exist(key) if param is None else _check(param.data_type, key, value)
        if problem is not None:
            problems.append(problem)
    return problems


def _unstamp(data_type: DataType, identifier: str, raw: Any) -> tuple[Any, Problem | None]:
    """Take the value out of ``{"value": v, "time": ms}``; a bare value is returned as is."""
    if not isinstance(raw, dict) or "value" not in raw or not raw.keys() <= _STAMPED_KEYS:
        return raw, None
    # A struct with a member named "value" is ambiguous; read it as the struct itself.
    if isinstance(data_type, StructType) and any(
        member.identifier == "value" for member in data_type.members
    ):
        return raw, None
    if "time" in raw and not _is_millis(raw["time"]):
        return raw, _params_invalid(f"time must be UTC milliseconds -> {identifier}", identifier)
    return raw["value"], None


def _is_millis(value: Any) -> bool:
    return (type(value) is int and value >= 0) or (
        isinstance(value, str) and value.isascii() and value.isdigit()
    )


def _params_invalid(message: str, identifier: str = "") -> Problem:
    return Problem(
        kind=ProblemKind.INVALID,
        identifier=identifier,
        message=f"request parameter error: {message}",
    )


def _not_exist(identifier: str) -> Problem:
    message = f"tsl parse: params not exist -> {identifier}"
    return Problem(kind=ProblemKind.UNKNOWN_IDENTIFIER, identifier=identifier, message=message)


def _unknown_call(what: str, identifier: str) -> Problem:
    message = f"tsl parse: no such {what} -> {identifier}"
    return Problem(kind=ProblemKind.UNKNOWN_CALL, identifier=identifier, message=message)
