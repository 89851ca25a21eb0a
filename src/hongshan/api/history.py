"""The history over HTTP: a device's values (raw and paged, or aggregated per bucket), its log
(events, status changes, commands), aggregates over many devices (per district, per product),
and the latest values of many devices in one call. Every query can be had as CSV, streamed.

Times in and out are milliseconds since the epoch; ``from``/``to`` also take ISO 8601 (an
offset-less time is read in ``tz``). ``to`` defaults to now and ``from`` to a day before it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, delete, get, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from hongshan.api.dependencies import Provided
from hongshan.api.devices import DEVICE
from hongshan.api.scope import Scope
from hongshan.store.history.buckets import bucket_label, buckets, zone
from hongshan.store.history.model import (
    AGGREGATES,
    Bucket,
    Device,
    HistoryProblem,
    HistoryStore,
    LogKind,
    LogPage,
    PointPage,
)
from hongshan.store.history.retention import Retention
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import DeviceFilter, DevicePlace
from hongshan.twin.properties import PropertyTwin, PropertyValue

DAY_MS = 86_400_000
MAX_DEVICES = 100_000
# a day inside year 1 and year 9999, so that a time shows in every zone's calendar
EARLIEST_MS = -62_135_510_400_000  # 0001-01-02T00:00:00Z
LATEST_MS = 253_402_214_399_999  # 9999-12-30T23:59:59.999Z
CSV = "text/csv; charset=utf-8"
LATEST_VALUE = ["identifier", "value", "ts", "time"]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

From = Annotated[str | None, QueryParameter(name="from", description="ms or ISO 8601")]
To = Annotated[str | None, QueryParameter(name="to", description="ms or ISO 8601; default now")]
Tz = Annotated[str, QueryParameter(description="time zone of calendar buckets and ISO times")]
Every = Annotated[
    str | None, QueryParameter(description="bucket size: 30s, 5m, 1h, 1d, 1w, 1mo, 1y")
]
Agg = Annotated[list[str] | None, QueryParameter(description=", ".join(AGGREGATES))]
Format = Annotated[Literal["json", "csv"], QueryParameter(name="format")]


class Aggregated(msgspec.Struct, kw_only=True):
    identifier: str
    buckets: list[Bucket]
    key: str = ""  # the district, product or device these buckets are of ("" for all)
    devices: int = 1  # how many devices the buckets are over


class AggregatePage(msgspec.Struct, kw_only=True):
    series: list[Aggregated]


class RetentionView(msgspec.Struct, kw_only=True, rename="camel"):
    raw_days: float | None  # None: kept for ever
    rollup_days: float | None
    own: bool  # the product's own; False: the server's default (history_raw_days, …)


class Latest(msgspec.Struct, rename="camel"):
    """One device's latest values, with where it is. Made positionally: ``latest`` makes one
    per device of a town (10,000 for the map), and keywords cost more than the rest."""

    product_key: str
    device_name: str
    district: str
    lat: float | None
    lon: float | None
    values: dict[str, tuple[Any, int]]  # identifier -> (value, ms)


def parse_time(text: str | None, default: int, tz: str) -> int:
    if text is None or text == "":
        return default
    try:
        if text.lstrip("-").isdigit():
            ms = int(text)
        else:
            moment = dt.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone(tz))
            ms = int(moment.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise HistoryProblem(
            f"{text!r} is not a time: give milliseconds since the epoch or ISO 8601"
        ) from None
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise HistoryProblem(
            f"{text!r} is out of range: times run from 0001-01-02 to 9999-12-30 "
            f"({EARLIEST_MS} to {LATEST_MS} ms)"
        )
    return ms


def time_range(start: str | None, end: str | None, tz: str) -> tuple[int, int]:
    last = parse_time(end, int(time.time() * 1000), tz)
    first = parse_time(start, last - DAY_MS, tz)
    if last <= first:
        raise HistoryProblem("the range is empty: 'to' must be after 'from'")
    return first, last


def aggregates_of(agg: list[str] | None) -> list[str]:
    names = [name for part in agg or ["avg"] for name in part.split(",") if name]
    unknown = [name for name in names if name not in AGGREGATES]
    if unknown or not names:
        raise HistoryProblem(
            f"agg={','.join(unknown) or '(none)'}: choose from {', '.join(AGGREGATES)}"
        )
    return list(dict.fromkeys(names))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = msgspec.json.encode(value).decode() if isinstance(value, dict | list) else str(value)
    if isinstance(value, str):
        # device-supplied text: a leading = + - @ TAB or CR makes a spreadsheet run it as a
        # formula (=HYPERLINK(…)); OWASP's "CSV Injection" advice is a leading quote. A NUL
        # ends the text for many readers: it is shown as U+FFFD, as in the stored names.
        text = text.replace("\0", "\ufffd")
        if text.startswith(FORMULA_PREFIXES):
            text = "'" + text
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(cells: Sequence[Any]) -> bytes:
    return (",".join(_csv_cell(c) for c in cells) + "\r\n").encode()


async def all_points(
    history: HistoryStore,
    device: Device,
    identifier: str,
    start: int,
    end: int,
    order: str,
    tz: str,
) -> AsyncIterator[bytes]:
    yield csv_line(["ts", "time", "value"])
    cursor = None
    while True:
        page = await history.points(
            device,
            identifier,
            start,
            end,
            limit=5000,
            cursor=cursor,
            descending=order == "desc",
        )
        for point in page.points:
            yield csv_line([point.ts, bucket_label(point.ts, tz), point.value])
        if page.next is None:
            return
        cursor = page.next


@get(DEVICE + "/history/{identifier:str}")
async def device_history(
    access: Provided[Scope],
    history: Provided[HistoryStore],
    pk: FromPath[str],
    dn: FromPath[str],
    identifier: FromPath[str],
    start: From = None,
    end: To = None,
    every: Every = None,
    agg: Agg = None,
    tz: Tz = "UTC",
    limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000,
    cursor: FromQuery[str | None] = None,
    order: FromQuery[Literal["asc", "desc"]] = "asc",
    output: Format = "json",
) -> Any:
    """A property's values over a range: raw and paged (``cursor``), or with ``every``
    aggregated per bucket."""
    access.device(pk, dn)
    first, last = time_range(start, end, tz)
    device = (pk, dn)
    if every is not None:
        names = aggregates_of(agg)
        found = await history.aggregate(
            [device], identifier, buckets(first, last, every, tz), names
        )
        if output == "csv":
            return _bucket_csv([Aggregated(identifier=identifier, buckets=found)], names, tz)
        return AggregatePage(series=[Aggregated(identifier=identifier, buckets=found)])
    if output == "csv":
        return Stream(
            all_points(history, device, identifier, first, last, order, tz),
            headers={"content-type": CSV},
        )
    page: PointPage = await history.points(
        device, identifier, first, last, limit=limit, cursor=cursor, descending=order == "desc"
    )
    return page


@get(DEVICE + "/log")
async def device_log(
    access: Provided[Scope],
    history: Provided[HistoryStore],
    pk: FromPath[str],
    dn: FromPath[str],
    start: From = None,
    end: To = None,
    kind: Annotated[list[LogKind] | None, QueryParameter(description="repeatable")] = None,
    tz: Tz = "UTC",
    limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000,
    cursor: FromQuery[str | None] = None,
    output: Format = "json",
) -> Any:
    """Events, service replies, status changes and commands sent, oldest first."""
    access.device(pk, dn)
    first, last = time_range(start, end, tz)
    kinds = kind or []
    if output == "csv":

        async def rows() -> AsyncIterator[bytes]:
            yield csv_line(["ts", "time", "kind", "identifier", "body"])
            after = None
            while True:
                page = await history.log(
                    (pk, dn), first, last, kinds=kinds, limit=5000, cursor=after
                )
                for e in page.entries:
                    yield csv_line([e.ts, bucket_label(e.ts, tz), e.kind, e.identifier, e.body])
                if page.next is None:
                    return
                after = page.next

        return Stream(rows(), headers={"content-type": CSV})
    found: LogPage = await history.log(
        (pk, dn), first, last, kinds=kinds, limit=limit, cursor=cursor
    )
    return found


async def selected(
    registry: SQLRegistry,
    access: Scope,
    devices: list[str] | None,
    product_key: str | None,
    group: str | None,
    tag: list[str] | None,
    tenant: str | None = None,
) -> list[DevicePlace]:
    if devices:
        chosen = []
        for text in devices:
            pk, _, dn = text.partition("/")
            if not dn:
                raise HistoryProblem(f"devices={text!r}: expected productKey/deviceName")
            access.device(pk, dn)
            at = (await registry.get_device(pk, dn)).location
            chosen.append(
                DevicePlace(
                    pk,
                    dn,
                    at.lat if at else None,
                    at.lon if at else None,
                    at.district if at else "",
                )
            )
        return chosen
    tags = dict(t.split(":", 1) for t in tag or [] if ":" in t) or None
    where = DeviceFilter(
        product_key=product_key,
        group=group,
        tags=tags,
        limit=MAX_DEVICES,
        reach=access.list_reach(group, tenant),  # (a group's name is its tenant's)
    )
    return await registry.device_places(where)


@get("/api/history/aggregate")
async def aggregate(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    history: Provided[HistoryStore],
    identifier: Annotated[list[str], QueryParameter(description="repeatable")],
    devices: Annotated[
        list[str] | None, QueryParameter(description="productKey/deviceName, repeatable")
    ] = None,
    product_key: Annotated[str | None, QueryParameter(name="productKey")] = None,
    group: FromQuery[str | None] = None,
    tag: Annotated[list[str] | None, QueryParameter(description="key:value")] = None,
    tenant: Annotated[
        str | None, QueryParameter(description="the group's, for the admin token")
    ] = None,
    group_by: Annotated[
        Literal["none", "district", "product", "device"], QueryParameter(name="groupBy")
    ] = "none",
    start: From = None,
    end: To = None,
    every: Every = "1h",
    agg: Agg = None,
    tz: Tz = "UTC",
    output: Format = "json",
) -> Any:
    """Aggregates over many devices (chosen by name, product, group or tag), all together or
    per district, product or device: the average PM2.5 of each district, each hour."""
    first, last = time_range(start, end, tz)
    names = aggregates_of(agg)
    cut = buckets(first, last, every or "1h", tz)
    chosen = await selected(registry, access, devices, product_key, group, tag, tenant)
    parts: dict[str, list[Device]] = {}
    for d in chosen:
        key = {
            "none": "",
            "district": d.district,
            "product": d.product_key,
            "device": f"{d.product_key}/{d.device_name}",
        }[group_by]
        parts.setdefault(key, []).append((d.product_key, d.device_name))
    series = [
        Aggregated(
            identifier=name,
            key=key,
            devices=len(members),
            buckets=await history.aggregate(members, name, cut, names),
        )
        for name in identifier
        for key, members in sorted(parts.items())
    ]
    if output == "csv":
        return _bucket_csv(series, names, tz)
    return AggregatePage(series=series)


@get("/api/history/latest")
async def latest(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    twin: Provided[PropertyTwin],
    identifier: Annotated[list[str] | None, QueryParameter(description="repeatable")] = None,
    devices: Annotated[list[str] | None, QueryParameter(description="pk/dn")] = None,
    product_key: Annotated[str | None, QueryParameter(name="productKey")] = None,
    group: FromQuery[str | None] = None,
    tag: Annotated[list[str] | None, QueryParameter(description="key:value")] = None,
    tenant: Annotated[
        str | None, QueryParameter(description="the group's, for the admin token")
    ] = None,
    tz: Tz = "UTC",
    output: Format = "json",
) -> Any:
    """The latest value and time of the chosen properties (all when none are named) of
    many devices, with where they are: the console's map. As CSV, a row per value (a
    device with none has one row without)."""
    chosen = await selected(registry, access, devices, product_key, group, tag, tenant)
    found = _latest_of(chosen, set(identifier or []), twin.peek)
    if output == "csv":
        zone(tz)  # (a 400 for an unknown zone, before any row)
        return Response(b"".join(_latest_csv(found, tz)), headers={"content-type": CSV})
    return found


_NO_VALUES: dict[str, tuple[Any, int]] = {}  # (shared by the devices with none: never changed)


def _latest_of(
    chosen: list[DevicePlace],
    wanted: set[str],
    peek: Callable[[str, str], Mapping[str, PropertyValue]],
) -> list[Latest]:
    """Each chosen device's ``Latest``: its values of ``wanted`` (all when empty), in the
    twin's order. The loop of a town's map (10,000 devices a call): one identifier (what the
    map asks) is one lookup a device, not a pass over its values, and a device without it
    shares one empty dict."""
    found: list[Latest] = []
    append = found.append
    if len(wanted) == 1:
        (name,) = wanted
        for d in chosen:
            pk, dn = d.product_key, d.device_name
            one = peek(pk, dn).get(name)
            values = _NO_VALUES if one is None else {name: (one.value, one.time)}
            append(Latest(pk, dn, d.district, d.lat, d.lon, values))
        return found
    for d in chosen:
        pk, dn = d.product_key, d.device_name
        values = {
            k: (v.value, v.time) for k, v in peek(pk, dn).items() if not wanted or k in wanted
        }
        append(Latest(pk, dn, d.district, d.lat, d.lon, values or _NO_VALUES))
    return found


def retention_of(history: HistoryStore, pk: str) -> RetentionView:
    kept = history.retention(pk)
    own = kept is not history.default_retention
    return RetentionView(raw_days=kept.raw_days, rollup_days=kept.rollup_days, own=own)


@get("/api/products/{pk:str}/retention")
async def show_retention(
    access: Provided[Scope],
    history: Provided[HistoryStore],
    pk: FromPath[str],
) -> RetentionView:
    """How long the product's history is kept: its own setting, or the default."""
    access.product(pk)
    return retention_of(history, pk)


@put("/api/products/{pk:str}/retention")
async def set_retention(
    access: Provided[Scope],
    history: Provided[HistoryStore],
    pk: FromPath[str],
    data: JSONBody[Retention],
) -> RetentionView:
    """Keep raw values (and events, status changes) ``rawDays`` and aggregates
    ``rollupDays``; null keeps them for ever. Older history goes in the next passes."""
    access.product(pk)
    for days in (data.raw_days, data.rollup_days):
        if days is not None and days <= 0:
            raise HistoryProblem("rawDays and rollupDays must be positive (or null: for ever)")
    await history.set_retention(pk, data)
    return retention_of(history, pk)


@delete("/api/products/{pk:str}/retention", status_code=200)
async def default_retention(
    access: Provided[Scope],
    history: Provided[HistoryStore],
    pk: FromPath[str],
) -> RetentionView:
    """Back to the server's default retention."""
    access.product(pk)
    await history.set_retention(pk, None)
    return retention_of(history, pk)


ROUTES = (
    device_history,
    device_log,
    aggregate,
    latest,
    show_retention,
    set_retention,
    default_retention,
)


def _bucket_csv(series: list[Aggregated], names: list[str], tz: str) -> Response[bytes]:
    lines = [csv_line(["identifier", "key", "start", "time", *names])]
    for one in series:
        for b in one.buckets:
            cells = [b.values.get(name) for name in names]
            lines.append(
                csv_line([one.identifier, one.key, b.start, bucket_label(b.start, tz), *cells])
            )
    return Response(b"".join(lines), headers={"content-type": CSV})


def _latest_csv(found: list[Latest], tz: str) -> Iterator[bytes]:
    yield csv_line(["productKey", "deviceName", "district", "lat", "lon", *LATEST_VALUE])
    for one in found:
        place = [one.product_key, one.device_name, one.district, one.lat, one.lon]
        if not one.values:
            yield csv_line(place)
        for identifier, (value, ms) in sorted(one.values.items()):
            yield csv_line([*place, identifier, value, ms, bucket_label(ms, tz)])
