"""How deep a device's values may nest: one bound for every reader of them.

RFC 8259, section 9: "An implementation may set limits on the maximum depth of nesting."
msgspec's decoder stops by itself at Python's recursion limit (about a thousand levels,
``RecursionError``), but a value decoded just short of it would still exhaust the recursion of
what reads it next: the thing model's checks, the shadow's comparison, the stores' encoders.
So what a device sends is checked once it is decoded, here, without recursing, against
``MAX_DEPTH``: the Alink dialect checks a message whole, the shadow each attribute's value.
"""

from __future__ import annotations

from typing import Any

# Arrays and objects within one another. The deepest message a dialect reads today nests 7
# (a history post's struct value in a list: ``dialects/alink/uplinks.py``); 32 leaves a thing
# model's structs room and keeps every reader far from Python's recursion limit.
MAX_DEPTH = 32


def nests_deeper(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value``'s arrays and objects (lists and dicts, as decoded) lie more than
    ``limit`` levels within one another; a scalar has none, ``[]`` one, ``[[1]]`` two.
    Found without recursing; a value with no containers in it costs one look."""
    if not isinstance(value, dict | list):
        return False
    todo: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while todo:
        item, level = todo.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        todo.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False
