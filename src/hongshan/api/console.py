"""What the console (``web/``) reads that the rest of the API does not answer in one go:
``GET /api/console/config`` (who is signed in, and how to draw the map) and
``GET /api/map/devices`` (every located device as one compact row, for the map's markers).

The map's rows are built from memory (the registry's directory and the alarm service's open
alarms) except when a group or state narrows them (one narrow query): a town of 10,000 lamps is
one small answer, not 100 pages of ``/api/devices``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.params import FromQuery, QueryParameter

from hongshan.alarms.model import Severity
from hongshan.api.dependencies import ConsoleMap, Provided
from hongshan.api.scope import Scope
from hongshan.identity.principals import Principal
from hongshan.services.alarms.service import AlarmService
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import DeviceFilter, DeviceState

MAX_MAP_DEVICES = 1_000_000  # (every device of a town: the map has no pages)
DISTRICT = "district.geojson"  # the demo district, next to the console's index.html


class You(msgspec.Struct, kw_only=True, rename="camel"):
    """Who the console is used by: it hides what their role does not allow."""

    name: str
    kind: str
    role: str
    tenant: str | None
    groups: list[str] | None


class MapView(msgspec.Struct, kw_only=True, rename="camel"):
    tile_url: str  # "": draw ``district`` instead
    tile_attribution: str
    district: str
    center: tuple[float, float]  # degrees north, east
    zoom: int


class ConsoleConfig(msgspec.Struct, kw_only=True):
    user: You
    map: MapView


MapRow = tuple[str, str, float, float, str, Severity | None, int]


class MapDevices(msgspec.Struct, kw_only=True):
    """``devices`` rows are arrays in the order ``fields`` names (a row is some 60 bytes, so
    10,000 devices are well under a megabyte)."""

    fields: tuple[str, ...] = (
        "productKey",
        "deviceName",
        "lat",
        "lon",
        "state",
        "worstOpenAlarm",
        "openAlarms",
    )
    devices: list[MapRow]


@get("/api/console/config")
async def console_config(
    principal: Provided[Principal], console_map: Provided[ConsoleMap]
) -> ConsoleConfig:
    """Who is signed in (name, role, tenant, groups) and how the console draws the town."""
    groups = sorted(principal.groups) if principal.groups is not None else None
    return ConsoleConfig(
        user=You(
            name=principal.name,
            kind=principal.kind,
            role=principal.role.label,
            tenant=principal.tenant,
            groups=groups,
        ),
        map=MapView(
            tile_url=console_map.tile_url,
            tile_attribution=console_map.tile_attribution,
            district=DISTRICT,
            center=console_map.center,
            zoom=console_map.zoom,
        ),
    )


@get("/api/map/devices")
async def map_devices(
    registry: Provided[SQLRegistry],
    alarms: Provided[AlarmService],
    access: Provided[Scope],
    product_key: Annotated[str | None, QueryParameter(name="productKey")] = None,
    group: FromQuery[str | None] = None,
    device_state: Annotated[DeviceState | None, QueryParameter(name="state")] = None,
    tenant: Annotated[
        str | None, QueryParameter(description="the group's, for the admin token")
    ] = None,
) -> MapDevices:
    """Every located device (those without a place are left out) with its state and the
    worst severity of its open alarms (null: none), narrowed by product, group and state, of
    those the principal may see (its tenant's, of its groups when it is limited to some)."""
    if product_key is not None:
        access.product(product_key)
    reach = access.reach if group is None else access.group_reach(group, tenant)
    where = DeviceFilter(
        product_key=product_key,
        group=group,
        state=device_state,
        reach=reach,
        limit=MAX_MAP_DEVICES,
    )
    open_alarms = alarms.open_by_device()
    rows: list[MapRow] = []
    for place in await registry.device_places(where):
        key = (place.product_key, place.device_name)
        if place.lat is None or place.lon is None:
            continue
        state = registry.directory.state_of(*key)
        if state is None:  # (deleted since the places were read)
            continue
        worst, count = open_alarms.get(key, (None, 0))
        rows.append((*key, place.lat, place.lon, state.value, worst, count))
    return MapDevices(devices=rows)


ROUTES = (console_config, map_devices)
