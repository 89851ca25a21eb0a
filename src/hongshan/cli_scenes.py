"""``hongshan scene …``: scenes from the command line, as a client of the REST API (the options
of ``cli_api``: ``--server``, ``--token``, ``--data-dir``, ``--json``).

A scene is a YAML file (JSON is YAML too), as ``rules.scene`` describes it::

    hongshan scene create -f lamps.yaml     create it, or each of several (YAML documents,
                                            ``---`` between them); trigger tokens shown once
    hongshan scene list | show ID | enable ID | disable ID | delete ID
    hongshan scene run ID [--data JSON]     trigger it now (its conditions and mode apply)
    hongshan scene trace ID                 its counters, last runs and what stopped others
    hongshan scene export [ID…] [-o FILE]   scenes as a file (all of them when no id is given)
    hongshan scene import FILE [--replace]  create it, or change the one of its name
    hongshan scene backtest ID --from T --to T [--compare FILE] [--limit N]
                                            when it would have run over the history's range
                                            (doing nothing); with --compare, the runs only
                                            the stored scene has and only the file's has

A file that is no YAML, or no scene, is refused before it is sent, naming its line; what the
server refuses (a property its product lacks…) names the trigger, condition or action, and
the line where the file has it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import msgspec
import yaml

from hongshan.cli_api import Api, api_options, iso_ms, moment
from hongshan.rules.scene import SceneSpec
from hongshan.services.rules.backtest import MAX_SECONDS

SCENE_COLUMNS = ("id", "name", "enabled", "mode")
SHOWN_MADE = ("id", "name", "enabled", "token")
_PATH = re.compile(r"`\$((?:\.[A-Za-z_]\w*|\[\d+\])*)`")
_PART = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")
_NUMBERED = re.compile(r"^(trigger|condition|action) (\d+)\b")


@click.group()
def scene() -> None:
    """Scenes: triggers, conditions and actions with delays (and schedules)."""


class SceneFile:
    """A scene's file: its text, the scenes it holds (YAML documents, ``---`` between them),
    and the line of each part of each."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        try:
            self.text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"{path}: {exc.strerror}") from None
        try:
            self.bodies = [body for body in yaml.safe_load_all(self.text) if body is not None]
            self._trees = [
                tree
                for tree in yaml.compose_all(self.text, Loader=yaml.SafeLoader)
                if tree is not None and not (isinstance(tree, yaml.ScalarNode) and tree.value == "")
            ]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else "?"
            problem = getattr(exc, "problem", None) or str(exc)
            raise click.ClickException(f"{self.name}, {where}: no YAML: {problem}") from None
        if not self.bodies:
            raise click.ClickException(f"{self.name}: no scene in it")
        for number, body in enumerate(self.bodies):
            if not isinstance(body, dict):
                raise click.ClickException(
                    f"{self.name}{self._where(number, [])}: a scene is a mapping (name:,"
                    " triggers:…)"
                )
            try:
                msgspec.convert(body, SceneSpec)
            except msgspec.ValidationError as exc:
                where = self._where(number, _steps(str(exc)))
                raise click.ClickException(f"{self.name}{where}: {exc}") from None

    def _where(self, number: int, steps: list[str | int]) -> str:
        """``, line N`` of a part of the ``number``th scene, or nothing when not found."""
        node: Any = self._trees[number] if number < len(self._trees) else None
        for step in steps:
            if isinstance(step, int) and isinstance(node, yaml.SequenceNode):
                if step >= len(node.value):
                    break
                node = node.value[step]
            elif isinstance(step, str) and isinstance(node, yaml.MappingNode):
                found = [value for key, value in node.value if key.value == step]
                if not found:
                    break
                node = found[0]
            else:
                break
        return "" if node is None else f", line {node.start_mark.line + 1}"

    def refused(self, number: int, exc: click.ClickException) -> click.ClickException:
        """The server's refusal of the ``number``th scene, with the line of the part it
        names."""
        status, _, detail = exc.message.partition(": ")
        match = _NUMBERED.match(detail)
        if match is None:
            return click.ClickException(f"{self.name}{self._where(number, [])}: {exc.message}")
        kind, index = match.group(1), int(match.group(2)) - 1
        steps: list[str | int] = [kind + "s", index]
        if kind == "condition":
            conditions = self.bodies[number].get("conditions") or {}
            every = len(conditions.get("all") or [])
            steps = ["conditions", "all", index]
            if index >= every:
                steps = ["conditions", "any", index - every]
        return click.ClickException(f"{self.name}{self._where(number, steps)}: {status}: {detail}")


def _steps(message: str) -> list[str | int]:
    """The path msgspec names in an error (``$.triggers[0].op``) as keys and indexes."""
    match = _PATH.search(message)
    if match is None:
        return []
    return [name if name else int(index) for name, index in _PART.findall(match.group(1))]


def _send(api: Api, method: str, path: str, file: SceneFile, number: int) -> Any:
    try:
        return api.request(method, path, json=file.bodies[number])
    except click.ClickException as exc:
        raise file.refused(number, exc) from None


@scene.command("create")
@api_options
@click.option("-f", "--file", "path", type=click.Path(path_type=Path), required=True)
def scene_create(api: Api, path: Path) -> None:
    """Create the scenes of a YAML file (each one's trigger token is shown once)."""
    file = SceneFile(path)
    made = [_send(api, "POST", "/api/scenes", file, n) for n in range(len(file.bodies))]
    api.show(made[0] if len(made) == 1 else made, None if len(made) == 1 else SHOWN_MADE)


@scene.command("import")
@api_options
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--replace", is_flag=True, help="Change the scene of each name that exists.")
def scene_import(api: Api, path: Path, replace: bool) -> None:
    """Create the scenes of an exported file (or change those of their names: --replace)."""
    file = SceneFile(path)
    existing = {}
    if replace:
        existing = {scene["name"]: scene["id"] for scene in api.every("/api/scenes")}
    made = []
    for number, body in enumerate(file.bodies):
        scene_id = existing.get(body.get("name"))
        if scene_id is None:
            made.append(_send(api, "POST", "/api/scenes", file, number))
        else:
            made.append(_send(api, "PUT", f"/api/scenes/{scene_id}", file, number))
    api.show(made[0] if len(made) == 1 else made, None if len(made) == 1 else SHOWN_MADE)


@scene.command("export")
@api_options
@click.argument("scene_ids", type=int, nargs=-1)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="[standard output]")
def scene_export(api: Api, scene_ids: tuple[int, ...], output: Path | None) -> None:
    """Write scenes (every one when no id is given) as a YAML file, one document each
    (``scene import`` reads it back)."""
    ids = scene_ids or [scene["id"] for scene in api.every("/api/scenes")]
    specs = [api.request("GET", f"/api/scenes/{scene_id}/export") for scene_id in ids]
    text = yaml.safe_dump_all(specs, sort_keys=False, allow_unicode=True)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@scene.command("list")
@api_options
def scene_list(api: Api) -> None:
    """List the scenes."""
    api.show(api.every("/api/scenes"), SCENE_COLUMNS)


@scene.command("show")
@api_options
@click.argument("scene_id", type=int)
@click.option("--secret", is_flag=True, help="Include its webhook key and trigger token.")
def scene_show(api: Api, scene_id: int, secret: bool) -> None:
    """Show a scene."""
    query = "?secret=true" if secret else ""
    api.show(api.request("GET", f"/api/scenes/{scene_id}{query}"))


@scene.command("enable")
@api_options
@click.argument("scene_id", type=int)
def scene_enable(api: Api, scene_id: int) -> None:
    """Run a scene."""
    api.show(api.request("POST", f"/api/scenes/{scene_id}/enable"))


@scene.command("disable")
@api_options
@click.argument("scene_id", type=int)
def scene_disable(api: Api, scene_id: int) -> None:
    """Stop running a scene (it is kept; its runs under way are cancelled)."""
    api.show(api.request("POST", f"/api/scenes/{scene_id}/disable"))


@scene.command("delete")
@api_options
@click.argument("scene_id", type=int)
def scene_delete(api: Api, scene_id: int) -> None:
    """Delete a scene."""
    api.request("DELETE", f"/api/scenes/{scene_id}")
    click.echo(f"scene {scene_id} deleted")


@scene.command("run")
@api_options
@click.argument("scene_id", type=int)
@click.option("--data", help="JSON given to its actions as the trigger's data.")
def scene_run(api: Api, scene_id: int, data: str | None) -> None:
    """Trigger a scene now (its conditions and mode decide whether it runs: see its trace)."""
    body = None
    if data is not None:
        try:
            body = json.loads(data)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    api.show(api.request("POST", f"/api/scenes/{scene_id}/trigger", json=body))


@scene.command("trace")
@api_options
@click.argument("scene_id", type=int)
def scene_trace(api: Api, scene_id: int) -> None:
    """A scene's counters, its last runs, and its last non-runs with why each did not run."""
    trace = api.request("GET", f"/api/scenes/{scene_id}/trace")
    if api.as_json:
        api.show(trace)
        return
    api.show(trace["counters"])
    for run in trace["runs"]:
        errors = "; ".join(run["errors"])
        line = f"{run['state']:<9} {run['at']} {run['trigger']} steps {run['stepsDone']}"
        click.echo(f"{line}  {errors}".rstrip())
    for non_run in trace["nonRuns"]:
        click.echo(f"not run   {non_run['at']} {non_run['trigger']}: {non_run['why']}")


@scene.command("backtest")
@api_options
@click.argument("scene_id", type=int)
@click.option("--from", "start", required=True, help="ms since the epoch, or ISO 8601.")
@click.option("--to", "end", required=True, help="ms since the epoch, or ISO 8601.")
@click.option("--compare", type=click.Path(path_type=Path), help="A file holding another version.")
@click.option("--limit", type=int, default=20, help="Triggers listed [20].")
def scene_backtest(
    api: Api, scene_id: int, start: str, end: str, compare: Path | None, limit: int
) -> None:
    """Run a scene over a range of the history, doing nothing: when it would have run, by
    which trigger, and what each step would have done; with --compare, what a change adds
    and removes."""
    body: dict[str, Any] = {
        "scene": scene_id,
        "from": moment(start),
        "to": moment(end),
        "limit": limit,
    }
    file = None
    if compare is not None:
        file = SceneFile(compare)
        if len(file.bodies) != 1:
            raise click.ClickException(f"{file.name} holds {len(file.bodies)} scenes: give one")
        body["against"] = file.bodies[0]
    try:  # (the server stops a backtest after MAX_SECONDS; waited for a little longer)
        found = api.request("POST", "/api/scenes/backtest", json=body, timeout=MAX_SECONDS + 30)
    except click.ClickException as exc:
        if file is not None and _NUMBERED.match(exc.message.partition(": ")[2]):
            raise file.refused(0, exc) from None  # (the file's scene: its line named)
        raise
    if api.as_json:
        api.show(found)
        return
    state = "complete" if found["complete"] else f"stopped at {iso_ms(found['stoppedAt'])}"
    click.echo(f"{found['uplinks']:,} uplinks, {found['values']:,} values replayed ({state})")
    _tally(found["scene"])
    if found.get("against") is not None:
        _tally(found["against"])
        counts = found["counts"]
        click.echo(
            f"runs only scene {scene_id} has: {counts['onlyScene']}, only {file and file.name}"
            f" has: {counts['onlyAgainst']}, both: {counts['same']}"
        )
        for label, runs in (
            ("only scene", found["onlyScene"]),
            ("only file", found["onlyAgainst"]),
        ):
            for one in runs:
                _run(one, label)
    for note in found["notes"]:
        click.echo(f"note: {note}")


def _tally(tally: dict[str, Any]) -> None:
    click.echo(
        f"scene {tally['name']!r}: triggered {tally['triggered']}, would run {tally['ran']},"
        f" not run: conditions {tally['notRun']}, mode {tally['skipped']}"
    )
    for one in tally["runs"]:
        _run(one)


def _run(one: dict[str, Any], label: str = "") -> None:
    trigger = one["trigger"]
    by = trigger.get("trigger", "?")
    if "deviceName" in trigger:
        by += f" {trigger['productKey']}/{trigger['deviceName']}"
    head = f"  {label + '  ' if label else ''}{iso_ms(one['at'])}  {by}"
    if not one["ran"]:
        click.echo(f"{head}  not run ({one['reason']}): {one['why']}")
        return
    click.echo(f"{head}  {one.get('state', '')}".rstrip())
    for step in one.get("steps", []):
        target = step.get("topic") or step.get("url") or step.get("deviceName") or ""
        click.echo(f"      {iso_ms(step['at'])}  {step['type']} {target}".rstrip())
