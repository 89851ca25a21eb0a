"""``hongshan rule …``: rules from the command line, as a client of the REST API (the options
of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).

``rule create --name N -f rule.sql`` with its actions, any number of each::

    --republish TOPIC            publish the output as JSON (``${field}`` from the output)
    --webhook URL                POST it, signed with the rule's secret (printed once)
    --set PK/DN                  set it as property values on that device
    --invoke PK/DN:SERVICE       call that service of that device with it
    --alarm TYPE[:SEVERITY]      raise an alarm of TYPE on the message's device [major]
    --clear-alarm TYPE           clear the message's device's open alarm of TYPE
    --to-rule ID|NAME            hand it to that rule's input (only it runs on it; kept by
                                 name)
    --error-republish TOPIC      the error action: every failed action, with the message
    --error-webhook URL          … or POSTed there
    --max-per-second N           its rate limit [100]
    --disabled                   stored, not run until ``rule enable``
    --shadow                     run without acting (its trace says what it would do)

``rule list``, ``rule show ID``, ``rule enable|disable|delete ID`` (``enable --live`` or
``--shadow``: acting, or only recording what it would do), ``rule trace ID`` (the counters,
the last runs, and the last non-runs with the condition that stopped each).

Rule files (``services.rules.files``: YAML, one rule or a list, with test cases)::

    rule test FILE...                     run their cases offline (no server); exit 1 on a
                                          failure or an error (named by file and line)
    rule export [ID...] > rules.yaml      the rules (all, or those) as a rule file
    rule import -f rules.yaml [--dry-run] create or update each by name (--dry-run: say what
                                          would change, change nothing); a rule is created
                                          after the rules of the file it hands its output to
    rule backtest ID|-f FILE --from T --to T [--against ID|FILE] [--limit N] [--device PK/DN]
                                          when it would have fired over the history's range
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from hongshan.alarms.model import SEVERITIES
from hongshan.cli_api import Api, api_options, iso_ms, moment
from hongshan.dialects.alink.rule_data import AlibabaRuleData
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.rules.definition import ActionSpec, ForwardAction, RuleSpec
from hongshan.rules.sql import RuleSyntaxError
from hongshan.services.rules.backtest import MAX_SECONDS
from hongshan.services.rules.files import FileRule, RuleFileError, dump, load, run_cases
from hongshan.services.rules.sources import PlatformStreams

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
@click.option(
    "--to-rule", multiple=True, metavar="ID|NAME", help="Hand the output to that rule's input."
)
@click.option("--error-republish", metavar="TOPIC", help="The error action: republish there.")
@click.option("--error-webhook", metavar="URL", help="The error action: POST there.")
@click.option("--max-per-second", type=float, help="Fires a second at most [100].")
@click.option("--disabled", is_flag=True, help="Store it without running it.")
@click.option(
    "--shadow", is_flag=True, help="Run it without acting: its trace says what it would do."
)
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
    to_rule: tuple[str, ...],
    error_republish: str | None,
    error_webhook: str | None,
    max_per_second: float | None,
    disabled: bool,
    shadow: bool,
) -> None:
    """Create a rule from a file of SQL (``-`` reads it from standard input)."""
    body: dict[str, Any] = {
        "name": name,
        "sql": sql.read(),
        "actions": [
            *_actions(republish, webhook, set_on, invoke, alarm, clear_alarm),
            *({"type": "rule", "rule": _rule_name(api, text)} for text in to_rule),
        ],
        "enabled": not disabled,
        "shadow": shadow,
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


def _rule_name(api: Api, text: str) -> str:
    """The name of the rule ``text`` names: a rule's name, else a rule's id (a rule action
    keeps the name, which an export carries to another town); else ``text`` as it is, for
    the server to refuse."""
    kept = api.every("/api/rules")
    if any(found["name"] == text for found in kept):
        return text
    by_id = {str(found["id"]): found["name"] for found in kept}
    return str(by_id.get(text, text))


@rule.command("list")
@api_options
def rule_list(api: Api) -> None:
    """List the rules."""
    api.show(api.every("/api/rules"), RULE_COLUMNS)


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
@click.option("--live", "mode", flag_value="live", help="Make it act (from shadow).")
@click.option("--shadow", "mode", flag_value="shadow", help="Make it only record what it would do.")
def rule_enable(api: Api, rule_id: int, mode: str | None) -> None:
    """Run a rule (live or shadow as it was, unless --live or --shadow)."""
    query = "" if mode is None else f"?mode={mode}"
    api.show(api.request("POST", f"/api/rules/{rule_id}/enable{query}"))


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
        if run.get("shadow"):  # (a shadow rule's fire: what it would have done)
            click.echo(f"would    {run['at']} {run['topic']} → {run['output']}")
            for action in run.get("wouldDo", []):
                target = action.get("url") or action.get("topic") or action.get("deviceName")
                click.echo(f"           {action['type']} {target or ''}".rstrip())
            continue
        errors = "; ".join(run["errors"])
        click.echo(f"ran      {run['at']} {run['topic']} → {run['output']}  {errors}".rstrip())
    for non_run in trace["nonRuns"]:
        click.echo(f"not run  {non_run['at']} {non_run['topic']}: {non_run['why']}")
    for failure in trace["failures"]:
        click.echo(f"failed   {failure['at']} {failure['action']}: {failure['error']}")


# -- rule files ------------------------------------------------------------------------------


def _load(path: str) -> list[FileRule]:
    try:
        text = Path(path).read_text(encoding="utf-8") if path != "-" else sys.stdin.read()
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from None
    try:
        return load(text, path)
    except RuleFileError as exc:
        raise click.ClickException(str(exc)) from None


@rule.command("test")
@click.argument("files", nargs=-1, required=True)
def rule_test(files: tuple[str, ...]) -> None:
    """Run the test cases of rule files offline: each case's messages through the rule as
    the engine runs it (its sources, its rate limit on the messages' times), doing nothing."""
    sources = (PlatformStreams(), AlibabaRuleData(lambda _pk: None, lambda _pk, _dn: True))
    failed = cases = broken = 0
    for path in files:
        try:
            rules = load(Path(path).read_text(encoding="utf-8"), path)
            specs = [found.spec for found in rules]  # (a rule action is followed into them)
            outcomes = [o for found in rules for o in run_cases(found, sources, path, specs)]
        except OSError as exc:
            click.echo(f"{path}: {exc.strerror}", err=True)
            broken += 1
            continue
        except (RuleFileError, RuleSyntaxError) as exc:
            click.echo(f"{path}: {exc}" if isinstance(exc, RuleSyntaxError) else str(exc), err=True)
            broken += 1
            continue
        for outcome in outcomes:
            cases += 1
            verdict = "PASS" if outcome.passed else "FAIL"
            click.echo(f"{verdict}  {path}:{outcome.line}  {outcome.rule} / {outcome.case}")
            for line in outcome.diff:
                click.echo(f"      {line}")
            failed += not outcome.passed
    summary = f"{cases - failed} of {cases} cases passed"
    click.echo(summary + (f"; {broken} file(s) could not be run" if broken else ""))
    if failed or broken:
        sys.exit(1)


@rule.command("export")
@api_options
@click.argument("rule_ids", nargs=-1, type=int)
def rule_export(api: Api, rule_ids: tuple[int, ...]) -> None:
    """The rules (all, or those named by id) as a rule file, on standard output."""
    shown = api.every("/api/rules")
    if rule_ids:
        by_id = {found["id"]: found for found in shown}
        missing = [str(i) for i in rule_ids if i not in by_id]
        if missing:
            raise click.ClickException(f"no rule {', '.join(missing)}")
        shown = [by_id[i] for i in rule_ids]
    click.echo(dump([_spec(found) for found in shown]), nl=False)


def _spec(shown: dict[str, Any]) -> RuleSpec:
    """A rule as the API shows it, as its spec (what a file holds of it)."""
    fields = ("name", "sql", "actions", "errorAction", "enabled", "maxPerSecond", "shadow")
    return msgspec.convert({key: shown[key] for key in fields if key in shown}, RuleSpec)


@rule.command("import")
@api_options
@click.option("-f", "--file", "path", required=True, help="A rule file (- : standard input).")
@click.option("--dry-run", is_flag=True, help="Say what would change, change nothing.")
def rule_import(api: Api, path: str, dry_run: bool) -> None:
    """Create or update the rules of a file, each by its name (its tests are not run); every
    rule is checked by the server first, and none is changed if one is refused."""
    wanted = _load(path)
    # (a name is unique within a tenant: the rules of the tenant the import writes to, the
    # caller's; the admin token's, of every tenant, writes to the default tenant)
    tenant = api.request("GET", "/api/auth/me")["tenant"] or DEFAULT_TENANT
    listed = api.every("/api/rules")
    kept = {found["name"]: found for found in listed if found["tenant"] == tenant}
    coming = [found.spec.name for found in wanted if found.spec.name not in kept]
    refused = []
    for found in wanted:  # (all checked before any is changed)
        try:
            api.request(
                "POST",
                "/api/rules/check",
                json=msgspec.to_builtins(found.spec),
                params={"alongside": coming},
            )
        except click.ClickException as exc:
            refused.append(f"{path}:{found.line}: {found.spec.name}: {exc.message}")
    if refused:
        raise click.ClickException("nothing imported:\n" + "\n".join(refused))
    prefix = "would " if dry_run else ""
    new = [found.spec for found in wanted if found.spec.name not in kept]
    made, finished = _creations(new)
    for spec in made:
        if not dry_run:
            kept[spec.name] = api.request("POST", "/api/rules", json=msgspec.to_builtins(spec))
        click.echo(f"{prefix}create  {spec.name}")
    for spec in finished:  # (made disabled first: it hands its output to a rule made after)
        if not dry_run:
            body = msgspec.to_builtins(spec)
            api.request("PUT", f"/api/rules/{kept[spec.name]['id']}", json=body)
    for found in wanted:
        body = msgspec.to_builtins(found.spec)
        old = kept.get(found.spec.name)
        if old is None or found.spec.name in coming:
            continue
        if msgspec.to_builtins(_spec(old)) != body:
            if not dry_run:
                api.request("PUT", f"/api/rules/{old['id']}", json=body)
            click.echo(f"{prefix}update  {found.spec.name} (rule {old['id']})")
        else:
            click.echo(f"unchanged  {found.spec.name} (rule {old['id']})")


def _creations(new: list[RuleSpec]) -> tuple[list[RuleSpec], list[RuleSpec]]:
    """The rules an import creates, in an order the server takes — each after those of them
    it hands its output to —, and those to change afterwards: a rule in a ring of them (A to
    B to A) is first created disabled and without its actions to rules not made yet, then
    changed to what it is once they are (so it never runs without them)."""
    pending = {spec.name: spec for spec in new}
    made: list[RuleSpec] = []
    finished: list[RuleSpec] = []
    while pending:
        ready = [spec for spec in pending.values() if not _targets(spec) & pending.keys()]
        if not ready:  # (a ring: one of it made first, without those actions)
            spec = next(iter(pending.values()))
            waiting = set(pending) - {spec.name}
            ready = [_without(spec, waiting)]
            finished.append(spec)
        for spec in ready:
            made.append(spec)
            del pending[spec.name]
    return made, finished


def _targets(spec: RuleSpec) -> set[str]:
    every = [*spec.actions, *([spec.error_action] if spec.error_action else [])]
    return {action.rule for action in every if isinstance(action, ForwardAction)}


def _without(spec: RuleSpec, names: set[str]) -> RuleSpec:
    def keep(action: ActionSpec | None) -> bool:
        return not (isinstance(action, ForwardAction) and action.rule in names)

    return msgspec.structs.replace(
        spec,
        actions=[action for action in spec.actions if keep(action)],
        error_action=spec.error_action if keep(spec.error_action) else None,
        enabled=False,
    )


@rule.command("backtest")
@api_options
@click.argument("rule_id", type=int, required=False)
@click.option("-f", "--file", "path", help="A rule file holding the rule (not a stored one).")
@click.option("--name", help="The rule of the file to take, when it holds several.")
@click.option("--from", "start", required=True, help="ms since the epoch, or ISO 8601.")
@click.option("--to", "end", required=True, help="ms since the epoch, or ISO 8601.")
@click.option("--against", help="Compare with this rule: an id, or a rule file.")
@click.option("--limit", type=int, default=20, help="Would-be fires listed [20].")
@click.option("--device", metavar="PK/DN", help="Only this device's history.")
def rule_backtest(
    api: Api,
    rule_id: int | None,
    path: str | None,
    name: str | None,
    start: str,
    end: str,
    against: str | None,
    limit: int,
    device: str | None,
) -> None:
    """Run a rule over a range of the history, doing nothing: when it would have fired and
    what it would have done; with --against, what the change adds and removes."""
    if (rule_id is None) == (path is None):
        raise click.UsageError("give a rule's ID or -f FILE (one of them)")
    body: dict[str, Any] = {
        "rule": rule_id if path is None else _file_rule(path, name),
        "from": moment(start),
        "to": moment(end),
        "limit": limit,
    }
    if against is not None:
        body["against"] = int(against) if against.isdigit() else _file_rule(against, None)
    if device is not None:
        body["device"] = device
    # (the server stops a backtest after MAX_SECONDS; waited for a little longer)
    found = api.request("POST", "/api/rules/backtest", json=body, timeout=MAX_SECONDS + 30)
    if api.as_json:
        api.show(found)
        return
    _summary(found)


def _file_rule(path: str, name: str | None) -> dict[str, Any]:
    rules = _load(path)
    if name is not None:
        rules = [found for found in rules if found.spec.name == name]
        if not rules:
            raise click.ClickException(f"{path}: no rule named {name!r}")
    if len(rules) != 1:
        raise click.ClickException(f"{path} holds {len(rules)} rules: choose one with --name")
    spec: dict[str, Any] = msgspec.to_builtins(rules[0].spec)
    return spec


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _fire(fire: dict[str, Any]) -> None:
    device = fire["device"] or "-"
    click.echo(f"  {iso_ms(fire['at'])}  {device}  {fire['topic']}  {_json(fire['output'])}")
    for action in fire.get("actions", []):
        target = action.get("url") or action.get("topic") or action.get("deviceName") or ""
        click.echo(f"      {action['type']} {target}".rstrip())


def _tally(tally: dict[str, Any]) -> None:
    not_run = tally["notRun"]
    click.echo(
        f"rule {tally['name']!r}: matched {tally['matched']}, would fire {tally['fired']}, "
        f"not run: where {not_run['where']}, rate limit {not_run['rateLimit']}"
    )
    for fire in tally["fires"]:
        _fire(fire)
    if tally["fired"] > len(tally["fires"]):
        click.echo(f"  … and {tally['fired'] - len(tally['fires'])} more")


def _summary(found: dict[str, Any]) -> None:
    click.echo(
        f"{iso_ms(found['from'])} to {iso_ms(found['to'])}: {found['uplinks']} messages replayed, "
        f"{found['values']} property values among them"
        + ("" if found["complete"] else f" (stopped early: go on --from {found['stoppedAt']})")
    )
    for note in found.get("notes", []):
        click.echo(f"note: {note}")
    _tally(found["rule"])
    against = found.get("against")
    if against is None:
        return
    _tally(against)
    counts = found["counts"]
    click.echo(
        f"compared: only {found['rule']['name']!r} {counts['onlyRule']}, only "
        f"{against['name']!r} {counts['onlyAgainst']}, different outputs {counts['changed']}, "
        f"the same {counts['same']}"
    )
    for title, key in (("only the rule", "onlyRule"), ("only against", "onlyAgainst")):
        if found[key]:
            click.echo(f"{title}:")
            for fire in found[key]:
                _fire(fire)
    if found["changed"]:
        click.echo("different outputs:")
        for change in found["changed"]:
            click.echo(
                f"  {iso_ms(change['at'])}  {change['device'] or '-'}  {_json(change['output'])}"
                f"  ≠  {_json(change['against'])}"
            )
