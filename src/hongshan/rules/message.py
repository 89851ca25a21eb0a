"""``RuleInput``: one message as a rule sees it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hongshan.messages import DeviceRef


def _no_tag(_key: str) -> str | None:
    return None


def _no_value(_identifier: str) -> Any:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleInput:
    """What a rule is evaluated on: the message (its topic, its decoded JSON payload, when it
    arrived, who sent it) and what the functions that are no part of the payload read — the
    device it came from (``deviceName()``, ``productKey()``), the device's tags
    (``attribute(key)``) and its latest property values (``latest(identifier)``). The engine
    builds one per message; the rule never writes to it."""

    topic: str
    payload: Any
    received: int | None = None
    """When the message arrived, in ms since the epoch: ``timestamp()``; None: now."""
    client_id: str = ""
    """The MQTT client id of the sender: ``clientid()`` (empty: ``"n/a"``, as AWS)."""
    device: DeviceRef | None = None
    tags: Callable[[str], str | None] = _no_tag
    """A tag's value by its key, or None when the device has no such tag."""
    latest: Callable[[str], Any] = _no_value
    """The device's latest value of a property, or None when it has none."""
