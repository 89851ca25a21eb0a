"""A schemaless product's thing model, grown from what its devices report.

A ThingsBoard device sends whatever keys it likes (``{"temperature": 21.5, "door": "open"}``);
a product marked ``schemaless`` keeps a thing model all the same, so that its data is typed
everywhere else (history, console, rules, property set): each key not in the model yet becomes
a property the first time it is reported, typed by that first value.

========================  =====================================================================
first value               property's TSL ``dataType``
========================  =====================================================================
``true`` / ``false``      ``bool`` (``{"0": "false", "1": "true"}``: TSL's bool is 0 or 1)
integer in int32          ``int``
other integer, or float   ``double`` (a 64-bit integer, e.g. a time in ms, does not fit ``int``)
string                    ``text`` (up to 10,240 characters)
object or array           ``text``: the value is kept as its JSON text
``null``                  none: the key is added when it first comes with a value
========================  =====================================================================

A key that cannot be a TSL identifier (1 to 50 letters, digits and ``_``) or that would take
the model past 300 features is not added, and said why (``FirstSeen.refused``). A later value
of another type is not this module's business: the model now says what the property is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from hongshan.things.tsl import (
    BoolType,
    DataType,
    NumberType,
    Profile,
    Property,
    TextType,
    ThingModel,
    TslError,
)
from hongshan.things.tsl_types import INT32_MAX, INT32_MIN, TEXT_MAX_LENGTH


class FirstSeen(msgspec.Struct, frozen=True, kw_only=True):
    added: tuple[str, ...] = ()  # identifiers added to the thing model
    refused: dict[str, str] = {}  # key -> why it is not a property


BOOL = BoolType(labels={"0": "false", "1": "true"})
INT = NumberType(type="int")
DOUBLE = NumberType(type="double")
TEXT = TextType(length=TEXT_MAX_LENGTH)


def data_type_of(value: Any) -> DataType | None:
    """The TSL type a property first reported as ``value`` gets; None for ``null``."""
    if isinstance(value, bool):  # (before int: a bool is an int in Python)
        return BOOL
    if isinstance(value, int):
        return INT if INT32_MIN <= value <= INT32_MAX else DOUBLE
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str | dict | list):
        return TEXT
    return None


def extend(
    model: ThingModel | None,
    product_key: str,
    values: Mapping[str, Any],
    *,
    access_mode: Literal["r", "rw"] = "r",
) -> tuple[ThingModel | None, FirstSeen]:
    """``model`` with a property for each key of ``values`` it lacks. Returns the model to
    keep (``model`` itself when nothing was added; checked as an imported TSL file is) and
    what was added and refused."""
    known = model.property_map if model is not None else {}
    candidates: dict[str, Property] = {}
    refused: dict[str, str] = {}
    for key, value in values.items():
        if key in known or key in candidates:
            continue
        data_type = data_type_of(value)
        if data_type is None:
            refused[key] = "null: no type to take from it (it is added when it has a value)"
            continue
        candidates[key] = Property(
            identifier=key, name=key, access_mode=access_mode, data_type=data_type
        )
    if not candidates:
        return model, FirstSeen(refused=refused)
    try:  # all of them at once: the usual case
        grown = _checked(model, product_key, [*candidates.values()])
    except TslError:  # one at a time, to tell which cannot be
        new: list[Property] = []
        for key, candidate in candidates.items():
            try:
                _checked(model, product_key, [*new, candidate])
            except TslError as exc:
                refused[key] = exc.problem
                continue
            new.append(candidate)
        if not new:
            return model, FirstSeen(refused=refused)
        candidates = {p.identifier: p for p in new}
        grown = _checked(model, product_key, new)
    return grown, FirstSeen(added=tuple(candidates), refused=refused)


def _checked(model: ThingModel | None, product_key: str, new: list[Property]) -> ThingModel:
    """The model with ``new`` properties, read back as an imported file would be (so it is
    valid TSL, and what is kept is what an export will show)."""
    base = model or ThingModel(profile=Profile(product_key=product_key))
    grown = msgspec.structs.replace(base, properties=(*base.properties, *new))
    return ThingModel.from_json(grown.to_json())
