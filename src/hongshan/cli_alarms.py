"""``hongshan alarm …``: alarms from the command line, as a client of the REST API (the options
of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).

``alarm list`` (``--status ACTIVE|CLEARED|UNACK|ACK|ACTIVE_UNACK|…``, ``--severity``,
``--min-severity``, ``--product``, ``--device``, ``--type``, ``--assignee``, ``--limit``,
``--offset``), ``alarm show ID``, ``alarm raise --product PK --device DN --type T
[--severity S] [--details JSON]``, ``alarm ack ID [--by NAME]``, ``alarm clear ID [--by
NAME]``, ``alarm assign ID NAME`` (``--nobody`` to unassign), ``alarm note ID TEXT [--by
NAME]``.

``alarm notify add --name N --webhook URL | --email ADDRESS… [--min-severity S] [--type T…]
[--change C…]``, ``alarm notify list``, ``alarm notify delete ID``.

``alarm condition add PK -f FILE`` (a YAML or JSON file: one alarm condition,
``rules.alarm_conditions`` shows one), ``alarm condition list PK``, ``alarm condition show
ID``, ``alarm condition change ID -f FILE``, ``alarm condition delete ID``, ``alarm
condition trace ID`` (its counters and last decisions), ``alarm condition backtest ID --from
T --to T [--compare FILE] [--limit N]`` (the alarms it would have raised and cleared over the
history's range, raising nothing; with ``--compare``, the raises and clears only the stored
condition makes and only the file's does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
import yaml

from hongshan.alarms.model import CHANGES, SEVERITIES, STATUSES
from hongshan.cli_api import Api, _params, api_options, iso_ms, moment
from hongshan.services.rules.backtest import MAX_SECONDS

ALARM_COLUMNS = ("id", "severity", "status", "type", "deviceName", "assignee")
CONDITION_COLUMNS = ("id", "productKey", "type", "enabled", "description")
ROUTE_COLUMNS = ("id", "name", "kind", "minSeverity", "sent", "failed", "lastError")
SEARCHES = ("ACTIVE", "CLEARED", "UNACK", "ACK", *STATUSES)


@click.group()
def alarm() -> None:
    """Alarms: raised by rules, devices' events and operators; acknowledged and cleared."""


@alarm.command("list")
@api_options
@click.option("--status", type=click.Choice(SEARCHES, case_sensitive=False))
@click.option("--severity", type=click.Choice(SEVERITIES))
@click.option("--min-severity", type=click.Choice(SEVERITIES))
@click.option("--product", "product_key")
@click.option("--device", "device_name")
@click.option("--type", "alarm_type")
@click.option("--assignee")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
def alarm_list(
    api: Api,
    status: str | None,
    severity: str | None,
    min_severity: str | None,
    product_key: str | None,
    device_name: str | None,
    alarm_type: str | None,
    assignee: str | None,
    limit: int,
    offset: int,
) -> None:
    """List alarms, newest raise first."""
    query = {
        "status": status.upper() if status else None,
        "severity": severity,
        "minSeverity": min_severity,
        "productKey": product_key,
        "deviceName": device_name,
        "type": alarm_type,
        "assignee": assignee,
        "limit": limit,
        "offset": offset,
    }
    given = {key: value for key, value in query.items() if value is not None}
    page = api.request("GET", "/api/alarms?" + urlencode(given))
    if api.as_json:
        api.show(page)
        return
    api.show(page["items"], ALARM_COLUMNS)
    click.echo(f"{len(page['items'])} of {page['total']}")


@alarm.command("show")
@api_options
@click.argument("alarm_id", type=int)
def alarm_show(api: Api, alarm_id: int) -> None:
    """Show an alarm, its details and notes."""
    api.show(api.request("GET", f"/api/alarms/{alarm_id}"))


@alarm.command("raise")
@api_options
@click.option("--product", "product_key", required=True)
@click.option("--device", "device_name", required=True)
@click.option("--type", "alarm_type", required=True)
@click.option("--severity", type=click.Choice(SEVERITIES), default="major", show_default=True)
@click.option("--details", help="A JSON object.")
@click.option("--by", default="cli", show_default=True)
def alarm_raise(
    api: Api,
    product_key: str,
    device_name: str,
    alarm_type: str,
    severity: str,
    details: str | None,
    by: str,
) -> None:
    """Raise an alarm by hand (a repeat when the device has one of that type open)."""
    body: dict[str, Any] = {
        "productKey": product_key,
        "deviceName": device_name,
        "type": alarm_type,
        "severity": severity,
        "by": by,
    }
    if details is not None:
        body["details"] = _params(details)
    api.show(api.request("POST", "/api/alarms", json=body))


@alarm.command("ack")
@api_options
@click.argument("alarm_id", type=int)
@click.option("--by", default="cli", show_default=True, help="Who acknowledges.")
def alarm_ack(api: Api, alarm_id: int, by: str) -> None:
    """Acknowledge an alarm."""
    api.show(api.request("POST", f"/api/alarms/{alarm_id}/ack", json={"by": by}))


@alarm.command("clear")
@api_options
@click.argument("alarm_id", type=int)
@click.option("--by", default="cli", show_default=True, help="Who clears.")
def alarm_clear(api: Api, alarm_id: int, by: str) -> None:
    """Clear an alarm."""
    api.show(api.request("POST", f"/api/alarms/{alarm_id}/clear", json={"by": by}))


@alarm.command("assign")
@api_options
@click.argument("alarm_id", type=int)
@click.argument("assignee", required=False)
@click.option("--nobody", is_flag=True, help="Take it from whoever has it.")
@click.option("--by", default="cli", show_default=True)
def alarm_assign(api: Api, alarm_id: int, assignee: str | None, nobody: bool, by: str) -> None:
    """Give an alarm to someone (or, with --nobody, to no one)."""
    if (assignee is None) != nobody:
        raise click.BadParameter("name an ASSIGNEE, or give --nobody")
    body = {"assignee": assignee, "by": by}
    api.show(api.request("POST", f"/api/alarms/{alarm_id}/assign", json=body))


@alarm.command("note")
@api_options
@click.argument("alarm_id", type=int)
@click.argument("text")
@click.option("--by", default="cli", show_default=True)
def alarm_note(api: Api, alarm_id: int, text: str, by: str) -> None:
    """Add a note to an alarm."""
    api.show(api.request("POST", f"/api/alarms/{alarm_id}/notes", json={"text": text, "by": by}))


@alarm.group("notify")
def notify() -> None:
    """Where alarms' changes are sent: webhooks and e-mail."""


@notify.command("add")
@api_options
@click.option("--name", required=True)
@click.option("--webhook", "url", metavar="URL", help="POST each change there, signed.")
@click.option("--email", "to", multiple=True, metavar="ADDRESS", help="Mail it (repeatable).")
@click.option("--min-severity", type=click.Choice(SEVERITIES))
@click.option("--type", "types", multiple=True, help="Only alarms of this type (repeatable).")
@click.option(
    "--change",
    "changes",
    multiple=True,
    type=click.Choice(CHANGES),
    help="Which changes [raised, escalated, reminder, acknowledged, cleared].",
)
@click.option("--retries", type=int)
def notify_add(
    api: Api,
    name: str,
    url: str | None,
    to: tuple[str, ...],
    min_severity: str | None,
    types: tuple[str, ...],
    changes: tuple[str, ...],
    retries: int | None,
) -> None:
    """Add a route: --webhook URL, or --email ADDRESS (a webhook's secret is printed once)."""
    if (url is None) == (not to):
        raise click.BadParameter("give --webhook URL or --email ADDRESS (one kind a route)")
    body: dict[str, Any] = {"name": name}
    body.update({"kind": "webhook", "url": url} if url else {"kind": "email", "to": list(to)})
    if min_severity:
        body["minSeverity"] = min_severity
    if types:
        body["types"] = list(types)
    if changes:
        body["changes"] = list(changes)
    if retries is not None:
        body["retries"] = retries
    api.show(api.request("POST", "/api/alarm-notifications", json=body))


@notify.command("list")
@api_options
def notify_list(api: Api) -> None:
    """List the routes, what they sent and their last failure."""
    api.show(api.every("/api/alarm-notifications"), ROUTE_COLUMNS)


@notify.command("delete")
@api_options
@click.argument("route_id", type=int)
def notify_delete(api: Api, route_id: int) -> None:
    """Delete a route."""
    api.request("DELETE", f"/api/alarm-notifications/{route_id}")
    click.echo(f"route {route_id} deleted")


@alarm.group()
def condition() -> None:
    """A product's alarm conditions: its devices' values raise and clear alarms."""


def _condition_file(path: Path) -> dict[str, Any]:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from None
    if not isinstance(body, dict):
        raise click.BadParameter(f"{path}: one alarm condition (a mapping: type, create, …)")
    return body


@condition.command("add")
@api_options
@click.argument("product_key")
@click.option("-f", "--file", "path", type=click.Path(path_type=Path), required=True)
def condition_add(api: Api, product_key: str, path: Path) -> None:
    """Add the alarm condition of a YAML or JSON file to a product."""
    body = _condition_file(path)
    api.show(api.request("POST", f"/api/products/{product_key}/alarm-conditions", json=body))


@condition.command("list")
@api_options
@click.argument("product_key")
def condition_list(api: Api, product_key: str) -> None:
    """List a product's alarm conditions."""
    found = api.every(f"/api/products/{product_key}/alarm-conditions")
    api.show(found, CONDITION_COLUMNS)


@condition.command("show")
@api_options
@click.argument("condition_id", type=int)
def condition_show(api: Api, condition_id: int) -> None:
    """Show an alarm condition whole."""
    api.show(api.request("GET", f"/api/alarm-conditions/{condition_id}"))


@condition.command("change")
@api_options
@click.argument("condition_id", type=int)
@click.option("-f", "--file", "path", type=click.Path(path_type=Path), required=True)
def condition_change(api: Api, condition_id: int, path: Path) -> None:
    """Replace an alarm condition with the one of a file (its product stays)."""
    body = _condition_file(path)
    api.show(api.request("PUT", f"/api/alarm-conditions/{condition_id}", json=body))


@condition.command("delete")
@api_options
@click.argument("condition_id", type=int)
def condition_delete(api: Api, condition_id: int) -> None:
    """Delete an alarm condition (the alarms it raised stay)."""
    api.request("DELETE", f"/api/alarm-conditions/{condition_id}")
    click.echo(f"alarm condition {condition_id} deleted")


@condition.command("trace")
@api_options
@click.argument("condition_id", type=int)
def condition_trace(api: Api, condition_id: int) -> None:
    """An alarm condition's counters and its last decisions (raised, repeated, cleared,
    waiting for a duration's end, broken by a value), newest first."""
    trace = api.request("GET", f"/api/alarm-conditions/{condition_id}/trace")
    if api.as_json:
        api.show(trace)
        return
    if not trace["running"]:
        click.echo(f"alarm condition {condition_id} is not running (disabled)")
        return
    c = trace["counters"]
    click.echo(
        f"heard {c['heard']}, raised {c['raised']}, repeated {c['repeated']}, cleared"
        f" {c['cleared']} (none open: {c['clearedNone']}); timers started"
        f" {c['timersStarted']}, broken {c['timersCancelled']}, done {c['timersDone']}"
    )
    for one in trace["decisions"]:
        line = f"{one['decision']:<9} {iso_ms(one['at'])}  {one['productKey']}/{one['deviceName']}"
        for more in (one.get("condition"), one.get("severity")):
            line += f"  {more}" if more else ""
        if "until" in one:
            line += f"  until {iso_ms(one['until'])}"
        click.echo(line)


@condition.command("backtest")
@api_options
@click.argument("condition_id", type=int)
@click.option("--from", "start", required=True, help="ms since the epoch, or ISO 8601.")
@click.option("--to", "end", required=True, help="ms since the epoch, or ISO 8601.")
@click.option("--compare", type=click.Path(path_type=Path), help="A file holding another version.")
@click.option("--limit", type=int, default=20, help="Changes listed [20].")
def condition_backtest(
    api: Api, condition_id: int, start: str, end: str, compare: Path | None, limit: int
) -> None:
    """Run an alarm condition over a range of the history, raising nothing: each alarm it
    would have raised, raised again and cleared; with --compare, what a change adds and
    removes."""
    body: dict[str, Any] = {
        "condition": condition_id,
        "from": moment(start),
        "to": moment(end),
        "limit": limit,
    }
    if compare is not None:
        body["against"] = _condition_file(compare)
    # (the server stops a backtest after MAX_SECONDS; waited for a little longer)
    found = api.request(
        "POST", "/api/alarm-conditions/backtest", json=body, timeout=MAX_SECONDS + 30
    )
    if api.as_json:
        api.show(found)
        return
    state = "complete" if found["complete"] else f"stopped at {iso_ms(found['stoppedAt'])}"
    click.echo(f"{found['uplinks']:,} uplinks, {found['values']:,} values replayed ({state})")
    _tally(f"condition {condition_id}", found["condition"])
    if found.get("against") is not None:
        _tally(str(compare), found["against"])
        counts = found["counts"]
        click.echo(
            f"changes only condition {condition_id} makes: {counts['onlyCondition']}, only"
            f" {compare} makes: {counts['onlyAgainst']}, both: {counts['same']}"
        )
        for label, changes in (
            ("only condition", found["onlyCondition"]),
            ("only file", found["onlyAgainst"]),
        ):
            for change in changes:
                _change(change, label)
    for note in found["notes"]:
        click.echo(f"note: {note}")


def _tally(name: str, tally: dict[str, Any]) -> None:
    click.echo(
        f"{name} ({tally['type']}): heard {tally['heard']}, raised {tally['raised']}, repeated"
        f" {tally['repeated']}, upgraded {tally['upgraded']}, cleared {tally['cleared']};"
        f" open at the end {tally['openAtEnd']}"
    )
    for change in tally["changes"]:
        _change(change)


def _change(change: dict[str, Any], label: str = "") -> None:
    head = f"  {label + '  ' if label else ''}{iso_ms(change['at'])}"
    device = f"{change['productKey']}/{change['deviceName']}"
    line = f"{head}  {change['change']:<8} {device}  {change['severity']}"
    if "previous" in change:
        line += f" (was {change['previous']})"
    click.echo(line)
