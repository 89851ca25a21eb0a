"""Lists of devices answered from memory: a ``DeviceFilter`` over the ``Directory``'s records
and the ``TagDirectory``'s tags and groups, with no query.

The API's device list is asked for a page and its total on every refresh of every console;
answered by SQL it was a query, a count and two reads of tags and firmware on the registry's
one thread, and fifty clients queued behind it (p99 353 ms over 10,000 devices). The registry
keeps every device's record in memory already, for the message path; with the few fields the
API shows besides (nickname, times, address, gateway, firmware) it answers a page by filtering
the records in order, and the total by the same pass.

What each filter means, so that it reads the same on SQLite and PostgreSQL:
- ``name_prefix``: the name starts with it, case-sensitive (device names are);
- ``text``: in the name or the nickname, case-insensitive (``str.casefold``);
- ``group``: a member of the group of that name; ``tags``: every one given, with that value;
- ``reach``: the tenant's products, and a member of one of its groups when it has a limit;
- orders by ``DEVICE_ORDERS``, names by code point, a device without a time first when
  ascending and last when descending, equals in the order of creation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hongshan.things.directory import DeviceKey, DeviceRecord, Directory
from hongshan.things.model import Device, DeviceFilter, DevicePlace, Location
from hongshan.things.tag_directory import TagDirectory

Item = tuple[DeviceKey, DeviceRecord]
Records = Mapping[DeviceKey, DeviceRecord]

_FIRST = (0, 0)  # a device without a time: before every time (after, reversed)
DEVICE_ORDERS: dict[str, Callable[[Records], Callable[[DeviceKey], Any]]] = {
    "createdAt": lambda records: lambda key: records[key].id,  # (ids are in order of creation)
    "deviceName": lambda records: lambda key: key[1],
    "productKey": lambda records: lambda key: key[0],
    "lastOnlineAt": lambda records: (
        lambda key: _FIRST if (at := records[key].last_online_at) is None else (1, at)
    ),
    "state": lambda records: lambda key: records[key].state.value,
}
"""What a list of devices may be sorted by (``DeviceFilter.order``): each the sort key of a
device, given the records."""


def select(directory: Directory, tags: TagDirectory, where: DeviceFilter) -> tuple[list[Item], int]:
    """The page of devices ``where`` asks for, in its order, and how many it selects in all."""
    records = directory.devices
    found = _narrowed(directory, tags, where)
    field, descending = where.order
    in_order = field == "createdAt" and directory.in_id_order
    if found is None and in_order and not descending:  # everything, as kept: no pass at all
        start = min(where.offset, len(records))  # (islice takes no index past sys.maxsize)
        first = itertools.islice(records, start, start + min(where.limit, len(records)))
        return [(key, records[key]) for key in first], len(records)
    keys = list(records) if found is None else found
    if not in_order:
        keys.sort(key=DEVICE_ORDERS["createdAt"](records))
        if field != "createdAt":
            # (a stable sort, reversed or not: equals stay in the order of creation)
            keys.sort(key=DEVICE_ORDERS[field](records), reverse=descending)
    if field == "createdAt" and descending:
        keys.reverse()
    page = keys[where.offset : where.offset + where.limit]
    return [(key, records[key]) for key in page], len(keys)


def _narrowed(
    directory: Directory, tags: TagDirectory, where: DeviceFilter
) -> list[DeviceKey] | None:
    """The devices ``where`` selects, in the directory's order; None for every one. Each
    filter is one pass over what the ones before it left (a comprehension over the keys:
    nothing made per device)."""
    records = directory.devices
    found: list[DeviceKey] | None = None

    def pool() -> Iterable[DeviceKey]:  # what the filters before left
        return records if found is None else found

    reach = where.reach
    if where.product_key is not None or reach.tenant is not None:
        products = set(directory.products) if where.product_key is None else {where.product_key}
        if reach.tenant is not None:
            products &= set(directory.products_of(reach.tenant))
        found = [key for key in records if key[0] in products]
    if reach.groups is not None:
        limit = reach.groups
        found = [key for key in pool() if not limit.isdisjoint(tags.memberships(*key))]
    if where.state is not None:
        state = where.state
        found = [key for key in pool() if records[key].state == state]
    if where.name_prefix:
        prefix = where.name_prefix
        found = [key for key in pool() if key[1].startswith(prefix)]
    if where.text:
        text = where.text.casefold()
        found = [
            key
            for key in pool()
            if text in key[1].casefold() or text in records[key].nickname.casefold()
        ]
    if where.group is not None:
        group = where.group
        found = [key for key in pool() if group in tags.memberships(*key)]
    for name, value in (where.tags or {}).items():
        found = [key for key in pool() if tags.tags_of(*key).get(name) == value]
    if where.gateway is not None:
        gateway = where.gateway
        found = [key for key in pool() if records[key].gateway == gateway]
    return found


def device_of(key: DeviceKey, record: DeviceRecord, tags: TagDirectory) -> Device:
    """The device as the API shows it (no secret)."""
    lat, lon, district = record.place
    location = None
    if lat is not None and lon is not None:
        location = Location(lat=lat, lon=lon, district=district)
    return Device(
        product_key=key[0],
        device_name=key[1],
        nickname=record.nickname,
        state=record.state,
        created_at=record.created_at,
        first_online_at=record.first_online_at,
        last_online_at=record.last_online_at,
        last_ip=record.last_ip,
        gateway=record.gateway,
        tags=dict(tags.tags_of(*key)),
        firmware=dict(record.firmware),
        location=location,
    )


def place_of(key: DeviceKey, record: DeviceRecord) -> DevicePlace:
    return DevicePlace(key[0], key[1], *record.place)
