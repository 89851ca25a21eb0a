"""``hongshan rule …``: rules from the command line, as a client of the REST API (the options
of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).

``rule create --name N -f rule.sql`` with its actions, any number of each::

    --republish TOPIC            publish the output as JSON (``${field}`` from the output)
    --webhook URL                POST it, signed with the rule's secret (printed once)
    --set PK/DN                  set it as property values on that device
    --invoke PK/DN:SERVICE       call that service of that device with it
    --alarm TYPE[:SEVERITY]      raise an alarm of TYPE on the message's device [major]
    --clear-alarm TYPE           clear the message's device's open alarm of TYPE
    --error-republish TOPIC      the error action: every failed action, with the message
    --error-webhook URL          … or POSTed there
    --max-per-second N           its rate limit [100]
    --disabled                   stored, not run until ``rule enable``

``rule list``, ``rule show ID``, ``rule enable|disable|delete ID``, ``rule trace ID`` (the
counters, the last runs, and the last non-runs with the condition that stopped each).
"""

from __future__ import annotations

from typing import Any

import click

from hongshan.alarms.model import SEVERITIES
from hongshan.cli_api import Api, api_options

RULE_COLUMNS = ("id", "name", "enabled", "sql")


@click.group()
def rule() -> None:
    """Rules: SQL on the town's messages, and what they do."""


def _device(text: str) -> tuple[str, str]:
    pk, found, dn = text.partition("/")
    if not found or not pk or not dn:
        raise click.BadParameter(f"{text!r}: write PRODUCTKEY/DEVICENAME")
    return pk, dn


def _actions(
    republish: tuple[str, ...],
    webhook: tuple[str, ...],
    set_on: tuple[str, ...],
    invoke: tuple[str, ...],
    alarm: tuple[str, ...] = (),
    clear_alarm: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = [{"type": "republish", "topic": t} for t in republish]
    actions += [{"type": "webhook", "url": url} for url in webhook]
    for text in set_on:
        pk, dn = _device(text)
        actions.append({"type": "set", "productKey": pk, "deviceName": dn})
    for text in invoke:
        device, found, service = text.rpartition(":")
        if not found or not service:
            raise click.BadParameter(f"{text!r}: write PRODUCTKEY/DEVICENAME:SERVICE")
        pk, dn = _device(device)
        actions.append({"type": "invoke", "productKey": pk, "deviceName": dn, "service": service})
    for text in alarm:
        alarm_type, found, severity = text.rpartition(":")
        if not found or severity not in SEVERITIES:
            alarm_type, severity = text, "major"
        actions.append({"type": "alarm", "alarmType": alarm_type, "severity": severity})
    actions += [{"type": "alarm", "alarmType": t, "clear": True} for t in clear_alarm]
    return actions


@rule.command("create")
@api_options
@click.option("--name", required=True)
@click.option("-f", "--file", "sql", type=click.File("r"), required=True, help="The rule's SQL.")
@click.option("--republish", multiple=True, metavar="TOPIC")
@click.option("--webhook", multiple=True, metavar="URL")
@click.option("--set", "set_on", multiple=True, metavar="PK/DN")
@click.option("--invoke", multiple=True, metavar="PK/DN:SERVICE")
@click.option("--alarm", multiple=True, metavar="TYPE[:SEVERITY]", help="Raise an alarm.")
@click.option("--clear-alarm", multiple=True, metavar="TYPE", help="Clear an open alarm.")
@click.option("--error-republish", metavar="TOPIC", help="The error action: republish there.")
@click.option("--error-webhook", metavar="URL", help="The error action: POST there.")
@click.option("--max-per-second", type=float, help="Fires a second at most [100].")
@click.option("--disabled", is_flag=True, help="Store it without running it.")
def rule_create(
    api: Api,
    name: str,
    sql: Any,
    republish: tuple[str, ...],
    webhook: tuple[str, ...],
    set_on: tuple[str, ...],
    invoke: tuple[str, ...],
    alarm: tuple[str, ...],
    clear_alarm: tuple[str, ...],
    error_republish: str | None,
    error_webhook: str | None,
    max_per_second: float | None,
    disabled: bool,
) -> None:
    """Create a rule from a file of SQL (``-`` reads it from standard input)."""
    body: dict[str, Any] = {
        "name": name,
        "sql": sql.read(),
        "actions": _actions(republish, webhook, set_on, invoke, alarm, clear_alarm),
        "enabled": not disabled,
    }
    if error_republish and error_webhook:
        raise click.BadParameter(
            "a rule has one error action: --error-republish or --error-webhook"
        )
    if error_republish:
        body["errorAction"] = {"type": "republish", "topic": error_republish}
    if error_webhook:
        body["errorAction"] = {"type": "webhook", "url": error_webhook}
    if max_per_second is not None:
        body["maxPerSecond"] = max_per_second
    api.show(api.request("POST", "/api/rules", json=body))


@rule.command("list")
@api_options
def rule_list(api: Api) -> None:
    """List the rules."""
    api.show(api.request("GET", "/api/rules"), RULE_COLUMNS)


@rule.command("show")
@api_options
@click.argument("rule_id", type=int)
@click.option("--secret", is_flag=True, help="Include the key of its webhooks' signatures.")
def rule_show(api: Api, rule_id: int, secret: bool) -> None:
    """Show a rule."""
    query = "?secret=true" if secret else ""
    api.show(api.request("GET", f"/api/rules/{rule_id}{query}"))


@rule.command("enable")
@api_options
@click.argument("rule_id", type=int)
def rule_enable(api: Api, rule_id: int) -> None:
    """Run a rule."""
    api.show(api.request("POST", f"/api/rules/{rule_id}/enable"))


@rule.command("disable")
@api_options
@click.argument("rule_id", type=int)
def rule_disable(api: Api, rule_id: int) -> None:
    """Stop running a rule (it is kept)."""
    api.show(api.request("POST", f"/api/rules/{rule_id}/disable"))


@rule.command("delete")
@api_options
@click.argument("rule_id", type=int)
def rule_delete(api: Api, rule_id: int) -> None:
    """Delete a rule."""
    api.request("DELETE", f"/api/rules/{rule_id}")
    click.echo(f"rule {rule_id} deleted")


@rule.command("trace")
@api_options
@click.argument("rule_id", type=int)
def rule_trace(api: Api, rule_id: int) -> None:
    """A rule's counters, its last runs, and its last non-runs with why each did not run."""
    trace = api.request("GET", f"/api/rules/{rule_id}/trace")
    if api.as_json:
        api.show(trace)
        return
    api.show(trace["counters"])
    for run in trace["runs"]:
        errors = "; ".join(run["errors"])
        click.echo(f"ran      {run['at']} {run['topic']} → {run['output']}  {errors}".rstrip())
    for non_run in trace["nonRuns"]:
        click.echo(f"not run  {non_run['at']} {non_run['topic']}: {non_run['why']}")
    for failure in trace["failures"]:
        click.echo(f"failed   {failure['at']} {failure['action']}: {failure['error']}")
