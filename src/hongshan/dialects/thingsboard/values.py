"""A ThingsBoard device's keys and values against its product's thing model, both ways.

ThingsBoard keeps whatever keys a device sends; Hongshan keeps a product's properties. So:

- a product with a thing model takes the keys it names, each value checked against its
  property's type; a key it does not name, or a value that does not fit, refuses the whole
  message (``Refusal``) — nothing of it is kept;
- a ``schemaless`` product also takes a key it does not name yet: the key becomes a property
  the first time it comes, typed by that first value (``things.first_seen``), and its value is
  kept at once; a key that cannot be a property (not a TSL identifier, the model full) refuses
  the message as an unknown key does;
- a product without a thing model that is not schemaless takes every key as it comes, as an
  Alink product without one does.

JSON and TSL differ in small ways, bridged here: ``true``/``false`` are a TSL ``bool``'s 1/0
(and go back to a ThingsBoard device as ``true``/``false``), an object or array reported for a
``text`` property is kept as its JSON text, and a number given as a string (``"21.5"``, which
ThingsBoard casts too) or as an integral float (``21.0``) fits a number property.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from hongshan.things import first_seen
from hongshan.things.tsl import BoolType, DataType, NumberType, TextType, ThingModel
from hongshan.things.tsl_check import check_value, quick_check

Values = dict[str, Any]


class Checked(msgspec.Struct, frozen=True):
    """What a message's values are in the thing model's terms; ``new``: the keys a schemaless
    product is to add to its thing model, with the values that type them."""

    values: Values
    new: Values = {}


class Refusal(msgspec.Struct, frozen=True):
    key: str
    why: str


def check(
    model: ThingModel | None, values: Values, *, schemaless: bool = False, product_key: str = ""
) -> Checked | Refusal:
    if model is None and not schemaless:
        return Checked(values)
    known = _checks(model) if model is not None else {}
    kept: Values = {}
    new: Values = {}
    for key, raw in values.items():
        found = known.get(key)
        if found is None:
            if not schemaless:
                return Refusal(key, "not a property of the product's thing model")
            new[key] = raw
            continue
        data_type, fits = found
        value = to_model(data_type, raw)
        if fits is None or not fits(value):
            fault = check_value(data_type, value, key)
            if fault is not None:
                return Refusal(key, fault[1])
        kept[key] = value
    if not new:
        return Checked(kept)
    grown, seen = first_seen.extend(model, product_key, new)
    for key, why in seen.refused.items():
        return Refusal(key, why)
    assert grown is not None
    added = grown.property_map
    for key in new:  # (in the message's order: the new keys after the known ones)
        kept[key] = to_model(added[key].data_type, new[key])
    return Checked(kept, new)


Check = tuple[DataType, Callable[[Any], bool] | None]
# each thing model's properties with their quick checks, built once per model (a model is
# replaced, not changed, when its product's is): by the model's id, with the model, so that an
# id a dead model's memory is reused under is not taken for it
_CHECKS: dict[int, tuple[ThingModel, dict[str, Check]]] = {}


def _checks(model: ThingModel) -> dict[str, Check]:
    found = _CHECKS.get(id(model))
    if found is not None and found[0] is model:
        return found[1]
    if len(_CHECKS) >= 1024:  # (models replaced often: the old ones go)
        _CHECKS.clear()
    checks = {p.identifier: (p.data_type, quick_check(p.data_type)) for p in model.properties}
    _CHECKS[id(model)] = (model, checks)
    return checks


def to_model(data_type: DataType, value: Any) -> Any:
    """A value as a ThingsBoard device sends it, in the thing model's terms."""
    kind = type(value)
    if kind is bool:
        return int(value) if isinstance(data_type, BoolType) else value
    if isinstance(data_type, NumberType):
        if kind is str:
            return _number(value)
        if kind is float and data_type.type == "int" and value.is_integer():
            return int(value)
        return value
    if isinstance(data_type, TextType) and kind in (dict, list):
        return msgspec.json.encode(value).decode()
    return value


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _number(text: str) -> Any:
    """ThingsBoard's type cast: a string that reads as a number is that number (as JSON
    writes numbers: no spaces, underscores, ``nan`` or ``inf``)."""
    if len(text) > 64 or not _NUMBER.fullmatch(text):
        return text
    if text.isdigit() or (text[0] == "-" and text[1:].isdigit()):
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else text


def property_types(model: ThingModel | None) -> dict[str, DataType]:
    return {} if model is None else {p.identifier: p.data_type for p in model.properties}


def param_types(
    model: ThingModel | None, service: str, *, output: bool = False
) -> dict[str, DataType]:
    """The types of a service's input (or output) parameters; a property set's are the
    properties'."""
    if model is None:
        return {}
    found = model.service_map.get(service)
    if found is None:
        return property_types(model) if service == "set" else {}
    params = found.output_data if output else found.input_data
    return {p.identifier: p.data_type for p in params}


def to_device(types: Mapping[str, DataType], values: Values) -> Values:
    """Values going to a ThingsBoard device: a ``bool``'s 1/0 as ``true``/``false``."""
    out = values
    for key, value in values.items():
        data_type = types.get(key)
        if isinstance(data_type, BoolType) and type(value) is int:
            if out is values:
                out = dict(values)
            out[key] = bool(value)
    return out


def from_device(types: Mapping[str, DataType], values: Values) -> Values:
    """Values a ThingsBoard device sent (an RPC's answer), in the thing model's terms."""
    return {key: to_model(types[key], v) if key in types else v for key, v in values.items()}
