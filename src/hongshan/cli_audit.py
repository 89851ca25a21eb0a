"""``hongshan audit``: the audit log from the command line, as a client of the REST API (the
options of ``cli_api``): who changed what through the API, when, from where, newest first.
``--since``/``--until`` (ms or ISO 8601), ``--actor``, ``--action``, ``--status``,
``--limit``, ``--offset``; ``--csv`` prints every record the filters choose as the API
streams it."""

from __future__ import annotations

from typing import Any

import click

from hongshan.cli_api import Api, api_options, iso_ms, moment

AUDIT_COLUMNS = ("time", "actor", "actorKind", "address", "action", "target", "status")


@click.command()
@api_options
@click.option("--since", help="ms since the epoch or ISO 8601 (UTC).")
@click.option("--until", help="ms since the epoch or ISO 8601 (UTC).")
@click.option("--actor", help="Only this principal's (a user, a key, admin-token, anonymous).")
@click.option("--action", help="Only this action, e.g. 'POST /api/keys'.")
@click.option("--status", type=int, help="Only answers with this HTTP status.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every record chosen).")
def audit(
    api: Api,
    since: str | None,
    until: str | None,
    as_csv: bool,
    **filters: Any,
) -> None:
    """The audit log: every change through the API, and every refused attempt."""
    params = {key: value for key, value in filters.items() if value is not None}
    if since is not None:
        params["since"] = moment(since)
    if until is not None:
        params["until"] = moment(until)
    if as_csv:
        params["format"] = "csv"
        click.echo(api.request("GET", "/api/audit", params=params, raw=True), nl=False)
        return
    page = api.request("GET", "/api/audit", params=params)
    if api.as_json:
        api.show(page)
        return
    for item in page["items"]:
        item["time"] = iso_ms(item["at"])
    api.show(page["items"], AUDIT_COLUMNS)
    click.echo(f"{len(page['items'])} of {page['total']}")
