"""Reading devices: the filters of ``DeviceFilter`` as SQL, and rows made ``Device``s with their
tags, firmware and gateway."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import contains, literal_like
from hongshan.store.registry.reach import within
from hongshan.things.directory import DeviceKey
from hongshan.things.model import Device, DeviceFilter, DevicePlace, DeviceState, Location

DEVICE_ORDERS: dict[str, sa.Column[Any]] = {
    "createdAt": t.devices.c.id,  # (ids are given in order of creation)
    "deviceName": t.devices.c.device_name,
    "productKey": t.devices.c.product_key,
    "lastOnlineAt": t.devices.c.last_online_at,
    "state": t.devices.c.state,
}
"""What a list of devices may be sorted by (``DeviceFilter.order``)."""


def ordered(query: Any, where: DeviceFilter) -> Any:
    field, descending = where.order
    column = DEVICE_ORDERS[field]
    first = column.desc().nulls_last() if descending else column.asc().nulls_first()
    return query.order_by(first, t.devices.c.id)


def filtered(query: Any, where: DeviceFilter) -> Any:
    """``query`` over ``devices`` narrowed to what ``where`` asks for."""
    d = t.devices
    query = query.where(within(where.reach, d.c.product_key, d.c.device_name))
    if where.product_key is not None:
        query = query.where(d.c.product_key == where.product_key)
    if where.state is not None:
        query = query.where(d.c.state == DeviceState(where.state).value)
    if where.name_prefix:
        prefix = literal_like(where.name_prefix) + "%"
        query = query.where(d.c.device_name.like(prefix, escape="\\"))
    if where.text:
        query = query.where(
            sa.or_(contains(d.c.device_name, where.text), contains(d.c.nickname, where.text))
        )
    if where.group is not None:
        members = (
            sa.select(t.group_members.c.device_id)
            .join(t.device_groups, t.device_groups.c.id == t.group_members.c.group_id)
            .where(t.device_groups.c.name == where.group)
        )
        query = query.where(d.c.id.in_(members))
    for key, value in (where.tags or {}).items():
        tagged = sa.select(t.device_tags.c.device_id).where(
            t.device_tags.c.key == key, t.device_tags.c.value == value
        )
        query = query.where(d.c.id.in_(tagged))
    if where.gateway is not None:
        parent = (
            sa.select(d.c.id)
            .where(d.c.product_key == where.gateway[0], d.c.device_name == where.gateway[1])
            .scalar_subquery()
        )
        query = query.where(d.c.gateway_id == parent)
    return query


def read_places(db: sa.Connection, where: DeviceFilter) -> list[DevicePlace]:
    """Name and place of the devices ``where`` selects: one narrow query, no tags or firmware."""
    d = t.devices
    select = sa.select(d.c.product_key, d.c.device_name, d.c.lat, d.c.lon, d.c.district)
    select = ordered(filtered(select, where), where).limit(where.limit).offset(where.offset)
    return [DevicePlace(*row) for row in db.execute(select)]


def read_devices(
    db: sa.Connection,
    where: DeviceFilter,
    *,
    only: DeviceKey | None = None,
    limit: int | None = None,
) -> list[Device]:
    """The devices ``where`` selects (or just ``only``), with tags, firmware and gateway."""
    d = t.devices
    parent = d.alias("parent")
    select = sa.select(
        d, parent.c.product_key.label("gw_pk"), parent.c.device_name.label("gw_dn")
    ).select_from(d.outerjoin(parent, parent.c.id == d.c.gateway_id))
    select = filtered(select, where)
    if only is not None:
        select = select.where(d.c.product_key == only[0], d.c.device_name == only[1])
    select = ordered(select, where).limit(limit or where.limit).offset(where.offset)
    rows = list(db.execute(select))
    ids = [row.id for row in rows]
    tags: dict[int, dict[str, str]] = {i: {} for i in ids}
    firmware: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for tag in db.execute(sa.select(t.device_tags).where(t.device_tags.c.device_id.in_(ids))):
            tags[tag.device_id][tag.key] = tag.value
        for fw in db.execute(
            sa.select(t.device_firmware).where(t.device_firmware.c.device_id.in_(ids))
        ):
            firmware[fw.device_id][fw.module] = fw.version
    return [device_from_row(row, tags[row.id], firmware[row.id]) for row in rows]


def device_from_row(row: Any, tags: dict[str, str], firmware: dict[str, str]) -> Device:
    location = None
    if row.lat is not None and row.lon is not None:
        location = Location(lat=row.lat, lon=row.lon, district=row.district)
    gateway = (row.gw_pk, row.gw_dn) if row.gw_pk is not None else None
    return Device(
        product_key=row.product_key,
        device_name=row.device_name,
        nickname=row.nickname,
        state=DeviceState(row.state),
        created_at=row.created_at,
        first_online_at=row.first_online_at,
        last_online_at=row.last_online_at,
        last_ip=row.last_ip,
        gateway=gateway,
        tags=tags,
        firmware=firmware,
        location=location,
    )
