"""``hongshan history query|log|aggregate``: the history as a client of the REST API.

``query`` prints a property's values over a range, or with ``--every`` its aggregates per
bucket; ``log`` a device's events and status changes; ``aggregate`` the buckets of many devices
together or per district. Times are shown in ``--tz``; ``--csv`` prints what the API streams,
``--json`` its JSON.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from hongshan.cli_api import Api, api_options
from hongshan.store.history.buckets import bucket_label
from hongshan.store.history.model import LogKind

RANGE = (
    click.option("--from", "start", help="ms since the epoch or ISO 8601 [a day before --to]"),
    click.option("--to", "end", help="ms since the epoch or ISO 8601 [now]"),
    click.option("--tz", default="UTC", show_default=True, help="Time zone for times and days."),
    click.option("--csv", "as_csv", is_flag=True, help="Print CSV."),
)


def _range(fn: Any) -> Any:
    for option in reversed(RANGE):
        fn = option(fn)
    return fn


def _device(text: str) -> tuple[str, str]:
    pk, _, dn = text.partition("/")
    if not pk or not dn:
        raise click.BadParameter(f"{text!r}: write PRODUCT_KEY/DEVICE_NAME")
    return pk, dn


def _query(
    start: str | None, end: str | None, tz: str, as_csv: bool, **more: Any
) -> dict[str, Any]:
    params = {"from": start, "to": end, "tz": tz, "format": "csv" if as_csv else None, **more}
    return {k: v for k, v in params.items() if v not in (None, (), [])}


@click.group()
def history() -> None:
    """The values, events and status changes devices sent."""


@history.command("query")
@api_options
@click.option("--device", "device", required=True, help="PRODUCT_KEY/DEVICE_NAME")
@click.option("--property", "identifier", required=True, help="The property's identifier.")
@click.option("--every", help="Bucket size (30s, 5m, 1h, 1d, 1w, 1mo, 1y): aggregate.")
@click.option("--agg", default="avg", show_default=True, help="avg,min,max,sum,count,first,last")
@click.option("--limit", type=int, default=1000, show_default=True, help="Raw values at most.")
@_range
def history_query(
    api: Api,
    device: str,
    identifier: str,
    every: str | None,
    agg: str,
    limit: int,
    start: str | None,
    end: str | None,
    tz: str,
    as_csv: bool,
) -> None:
    """A property's values over a range, or its aggregates per bucket with --every."""
    pk, dn = _device(device)
    path = f"/api/products/{pk}/devices/{dn}/history/{identifier}"
    more = {"every": every, "agg": agg if every else None, "limit": None if every else limit}
    params = _query(start, end, tz, as_csv, **more)
    found = api.request("GET", path, params=params, raw=as_csv)
    if as_csv or api.as_json:
        _echo(api, found)
        return
    if every:
        _show_buckets(api, found["series"], agg.split(","), tz)
        return
    table = Table("time", identifier)
    for ts, value in found["points"]:
        table.add_row(bucket_label(ts, tz), _text(value))
    api.console.print(table)
    if found["next"]:
        click.echo("(more after this page: --limit, or --csv for everything)")


@history.command("log")
@api_options
@click.option("--device", "device", required=True, help="PRODUCT_KEY/DEVICE_NAME")
@click.option(
    "--kind",
    multiple=True,
    type=click.Choice([kind.value for kind in LogKind]),
    help="Only these kinds (repeatable).",
)
@click.option("--limit", type=int, default=1000, show_default=True)
@_range
def history_log(
    api: Api,
    device: str,
    kind: tuple[str, ...],
    limit: int,
    start: str | None,
    end: str | None,
    tz: str,
    as_csv: bool,
) -> None:
    """A device's events, service replies, status changes and the commands it was sent."""
    pk, dn = _device(device)
    params = _query(start, end, tz, as_csv, kind=list(kind), limit=None if as_csv else limit)
    found = api.request("GET", f"/api/products/{pk}/devices/{dn}/log", params=params, raw=as_csv)
    if as_csv or api.as_json:
        _echo(api, found)
        return
    table = Table("time", "kind", "identifier", "details")
    for entry in found["entries"]:
        table.add_row(
            bucket_label(entry["ts"], tz), entry["kind"], entry["identifier"], _text(entry["body"])
        )
    api.console.print(table)


@history.command("aggregate")
@api_options
@click.option("--property", "identifiers", multiple=True, required=True, help="Repeatable.")
@click.option("--product", "product_key", help="The devices of this product.")
@click.option("--group", help="The devices of this group.")
@click.option("--tag", multiple=True, help="key:value (repeatable).")
@click.option("--device", "devices", multiple=True, help="PRODUCT_KEY/DEVICE_NAME (repeatable).")
@click.option(
    "--by",
    type=click.Choice(["none", "district", "product", "device"]),
    default="none",
    show_default=True,
)
@click.option("--every", default="1d", show_default=True)
@click.option("--agg", default="avg", show_default=True)
@_range
def history_aggregate(
    api: Api,
    identifiers: tuple[str, ...],
    product_key: str | None,
    group: str | None,
    tag: tuple[str, ...],
    devices: tuple[str, ...],
    by: str,
    every: str,
    agg: str,
    start: str | None,
    end: str | None,
    tz: str,
    as_csv: bool,
) -> None:
    """Aggregates over many devices, together or per district: the daily average PM2.5 of
    every district, say."""
    more = {
        "identifier": list(identifiers),
        "productKey": product_key,
        "group": group,
        "tag": list(tag),
        "devices": list(devices),
        "groupBy": by,
        "every": every,
        "agg": agg,
    }
    params = _query(start, end, tz, as_csv, **more)
    found = api.request("GET", "/api/history/aggregate", params=params, raw=as_csv)
    if as_csv or api.as_json:
        _echo(api, found)
        return
    _show_buckets(api, found["series"], agg.split(","), tz)


@history.command("retention")
@api_options
@click.argument("product_key")
@click.option("--raw-days", type=float, help="Days values, events and status changes are kept.")
@click.option("--rollup-days", type=float, help="Days minute and hour aggregates are kept.")
@click.option("--forever", "forever", multiple=True, type=click.Choice(["raw", "rollup"]),
              help="Keep these for ever (repeatable).")  # fmt: skip
@click.option("--default", "to_default", is_flag=True, help="Back to the server's default.")
def history_retention(
    api: Api,
    product_key: str,
    raw_days: float | None,
    rollup_days: float | None,
    forever: tuple[str, ...],
    to_default: bool,
) -> None:
    """Show or set how long a product's history is kept."""
    path = f"/api/products/{product_key}/retention"
    if to_default:
        api.show(api.request("DELETE", path))
        return
    if raw_days is None and rollup_days is None and not forever:
        api.show(api.request("GET", path))
        return
    kept = api.request("GET", path)
    body = {
        "rawDays": None if "raw" in forever else raw_days or kept["rawDays"],
        "rollupDays": None if "rollup" in forever else rollup_days or kept["rollupDays"],
    }
    api.show(api.request("PUT", path, json=body))


def _show_buckets(api: Api, series: list[dict[str, Any]], names: list[str], tz: str) -> None:
    table = Table("identifier", "of", "start", *names)
    for one in series:
        for bucket in one["buckets"]:
            cells = [_text(bucket["values"].get(name)) for name in names]
            label = bucket_label(bucket["start"], tz)
            table.add_row(one["identifier"], one.get("key") or "all", label, *cells)
    api.console.print(table)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _echo(api: Api, found: Any) -> None:
    if isinstance(found, str):
        click.echo(found, nl=False)
    else:
        api.show(found)
