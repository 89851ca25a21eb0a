"""Desired property values (Alibaba's "desired property values") as pure functions.

The platform sets a value a device should take — while it is offline, typically — with an
optimistic version per property: a change names the version it read (0 for none yet) and is
refused when that is no longer current; each change increments it. The device reads them
(``desired/get``) and clears the ones it has applied (``desired/delete``, naming the version it
applied, so a newer value set meanwhile is kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from hongshan.errors import HongshanError


class DesiredValue(msgspec.Struct, frozen=True):
    value: Any
    version: int
    time: int  # ms since the epoch


Desired = dict[str, DesiredValue]


class VersionConflict(HongshanError):
    """A change that names a version no longer current; the API answers 409."""

    http_status = 409

    def __init__(self, identifier: str, expected: int, current: int) -> None:
        super().__init__(
            f"desired {identifier}: version {expected} is not the current one ({current})"
        )
        self.identifier = identifier


def set_values(
    current: Desired, items: Mapping[str, Any], versions: Mapping[str, int], now: int
) -> Desired:
    """``items`` become desired; a version given in ``versions`` must be the current one."""
    changed = dict(current)
    for identifier, value in items.items():
        existing = current.get(identifier)
        version = existing.version if existing is not None else 0
        if identifier in versions and versions[identifier] != version:
            raise VersionConflict(identifier, versions[identifier], version)
        changed[identifier] = DesiredValue(value, version + 1, now)
    return changed


def read(current: Desired, identifiers: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What ``desired/get`` answers: ``{id: {"value", "version"}}`` for those asked (all when
    none is named)."""
    wanted = list(identifiers) or list(current)
    return {
        identifier: {"value": current[identifier].value, "version": current[identifier].version}
        for identifier in wanted
        if identifier in current
    }


def delete(current: Desired, applied: Mapping[str, Any]) -> Desired:
    """``desired/delete``: ``{id: {"version": v}}`` clears a value set at that version (or any
    version, when none is named); a newer value set since is kept."""
    kept = dict(current)
    for identifier, detail in applied.items():
        existing = kept.get(identifier)
        if existing is None:
            continue
        version = detail.get("version") if isinstance(detail, dict) else None
        if version is None or version == existing.version:
            del kept[identifier]
    return kept
