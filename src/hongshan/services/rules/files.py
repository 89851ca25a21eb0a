"""Rule files: rules as YAML, with test cases that run offline (``hongshan rule test``, as
``promtool test rules``), and the export of rules as such a file.

A file holds one rule or a list of them; each is a rule's spec as ``POST /api/rules`` takes
it (``name``, ``sql``, ``actions``, ``errorAction``, ``maxPerSecond``, ``enabled``,
``shadow``) and ``tests:``, a list of cases::

    - name: PM2.5 over 75
      sql: SELECT deviceName() AS station, values.PM25 AS pm25
           FROM "$things/a1Air/+/properties" WHERE values.PM25 > 75
      actions:
        - {type: webhook, url: "https://ops.example/hooks/air"}
      maxPerSecond: 1
      tests:
        - name: a bad hour fires once a second
          messages:
            - {device: a1Air/station-1, properties: {PM25: 80}, time: 2026-12-01T08:00:00Z}
            - {device: a1Air/station-1, properties: {PM25: 90}, time: 2026-12-01T08:00:00.5Z}
          fires:
            - message: 0
              output: {station: station-1, pm25: 80}
              actions: [{type: webhook, body: {pm25: 80}}]
        - name: clean air does not
          messages:
            - {device: a1Air/station-1, properties: {PM25: 12}}
          fires: []

A message is what the platform heard: a device's ``properties`` (a post), ``event`` with
``params``, or ``status`` (``online``/``offline``) — each presented by the live engine's own
sources, on every topic they give it (``$things/…``, Alibaba's rule data) —, or a client's
publish on ``topic`` with its ``payload`` (and ``clientId``, ``device``). ``time`` is ms since
the epoch or ISO 8601 (UTC without an offset); without one a message comes a second after the
one before (the first at ``FIRST_TIME``): the rule's rate limit runs on these times.

``fires`` lists the fires expected, in order (``[]``: none): ``message``, the index of the
message that fires (from 0); ``output``, what the rule SELECTs (a partial match: the keys
given must be there, equal; nested objects likewise); ``actions``, each matched to one of the
fire's actions of its ``type`` whose fields hold the ones given (a webhook's ``url``,
``body``; a set's ``productKey``, ``values``; …, as ``services.rules.described`` says);
``alarms``, the same for actions of type ``alarm``. A case without ``fires`` only checks that
its messages run.

An action of type ``rule`` handing the output to another rule of the same file is followed
into it, as the engine would (its ``topic`` ``$rules/<name>``, its ``payload`` the output):
what that rule did is the action's ``then`` — ``output`` and ``actions`` (the whole list) when
it fired, ``output: null`` and ``why`` when it did not::

          actions:
            - {type: rule, rule: bright, then: {output: {lamp: lamp-1}}}

A rule handing its output to itself is refused; one to a rule not in the file is only said
(the server checks it is there when the file is imported).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import yaml

from hongshan.errors import HongshanError
from hongshan.messages import DeviceRef, EventRaised, PropertyValues, StatusChanged, Uplink
from hongshan.rules.compile import compile
from hongshan.rules.definition import ForwardAction, RuleSpec, action_problem
from hongshan.rules.sql import RuleSyntaxError, parse
from hongshan.services.rules.sources import RuleSource
from hongshan.services.rules.trial import Heard, Trial

FIRST_TIME = 1_767_225_600_000  # 2026-01-01T00:00:00Z: a case's first message without a time
STEP = 1_000  # ms between messages without a time
RULE_KEYS = ("name", "sql", "actions", "errorAction", "maxPerSecond", "enabled", "shadow")


class RuleFileError(HongshanError):
    """A rule file that cannot be read as one: the message names the file and the line."""

    http_status = 400


class _Located(dict[str, Any]):
    """A YAML mapping that knows the line it starts on."""

    line = 0


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, its mappings knowing their lines (for errors that name them)."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Any:
    located = _Located()
    located.line = node.start_mark.line + 1
    yield located
    located.update((str(k), v) for k, v in loader.construct_mapping(node, deep=True).items())


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@dataclass(frozen=True, kw_only=True)
class Message:
    """One message of a case, as the platform heard it: an uplink, or a client's publish."""

    at: int
    line: int
    uplink: Uplink | None = None
    topic: str = ""
    payload: Any = None
    client_id: str = ""
    device: DeviceRef | None = None


@dataclass(frozen=True, kw_only=True)
class Case:
    name: str
    line: int
    messages: list[Message]
    fires: list[dict[str, Any]] | None  # None: not checked


@dataclass(frozen=True, kw_only=True)
class FileRule:
    spec: RuleSpec
    line: int
    cases: list[Case] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """A case run: whether it passed, and what differed (lines to print)."""

    rule: str
    case: str
    line: int
    passed: bool
    diff: list[str]


def load(text: str, path: str) -> list[FileRule]:
    """The rules of a file (``path`` names it in errors); ``RuleFileError`` naming the line
    of what is wrong."""
    try:
        data = yaml.load(text, Loader=_Loader)  # (a SafeLoader: safe_load, with lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(f"{where}: not YAML: {problem}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise RuleFileError(f"{path}: a rule file holds a rule (a mapping) or a list of them")
    rules = [_rule(item, path) for item in data]
    names = [rule.spec.name for rule in rules]
    for rule in rules:
        if names.count(rule.spec.name) > 1:
            raise RuleFileError(f"{path}:{rule.line}: a second rule named {rule.spec.name!r}")
    return rules


def _rule(item: _Located, path: str) -> FileRule:
    where = f"{path}:{item.line}"
    unknown = sorted(set(item) - {*RULE_KEYS, "tests"})
    if unknown:
        raise RuleFileError(
            f"{where}: unknown key {unknown[0]!r} (a rule has {', '.join(RULE_KEYS)}, tests)"
        )
    spec_data = {key: _plain(value) for key, value in item.items() if key != "tests"}
    try:
        spec = msgspec.convert(spec_data, RuleSpec)
    except msgspec.ValidationError as exc:
        line = _line_at(item, str(exc))
        raise RuleFileError(f"{path}:{line}: {exc}") from None
    try:
        compile(parse(spec.sql))
    except RuleSyntaxError as exc:
        raise RuleFileError(f"{where}: sql: {exc}") from None
    for action in [*spec.actions, *([spec.error_action] if spec.error_action else [])]:
        problem = action_problem(action)
        if problem is None and isinstance(action, ForwardAction) and action.rule == spec.name:
            problem = f"rule: {action.rule!r} is this rule: a rule hands its output to another"
        if problem is not None:
            raise RuleFileError(f"{where}: {problem}")
    tests = item.get("tests", [])
    if not isinstance(tests, list):
        raise RuleFileError(f"{where}: tests is a list of cases")
    return FileRule(spec=spec, line=item.line, cases=[_case(case, path) for case in tests])


def _case(item: Any, path: str) -> Case:
    if not isinstance(item, _Located):
        raise RuleFileError(f"{path}: a test case is a mapping (name, messages, fires)")
    where = f"{path}:{item.line}"
    unknown = sorted(set(item) - {"name", "messages", "fires"})
    if unknown:
        raise RuleFileError(f"{where}: unknown key {unknown[0]!r} (name, messages, fires)")
    raw = item.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RuleFileError(f"{where}: a case has messages, a list of one or more")
    messages: list[Message] = []
    at = FIRST_TIME - STEP
    for message in raw:
        made = _message(message, at, path, item.line)
        messages.append(made)
        at = made.at
    fires = item.get("fires")
    if fires is not None:
        if not isinstance(fires, list) or not all(isinstance(f, dict) for f in fires):
            raise RuleFileError(f"{where}: fires is a list of expected fires ([]: none)")
        for fire in fires:
            extra = sorted(set(fire) - {"message", "output", "actions", "alarms"})
            if extra:
                raise RuleFileError(
                    f"{path}:{fire.line}: unknown key {extra[0]!r} "
                    "(an expected fire has message, output, actions, alarms)"
                )
    return Case(
        name=str(item.get("name", f"case at line {item.line}")),
        line=item.line,
        messages=messages,
        fires=None if fires is None else [_plain(fire) | {"line": fire.line} for fire in fires],
    )


def _message(item: Any, before: int, path: str, case_line: int) -> Message:
    if not isinstance(item, _Located):
        raise RuleFileError(f"{path}:{case_line}: a message is a mapping")
    where = f"{path}:{item.line}"
    at = _time(item.get("time"), before + STEP, where)
    device = None
    if "device" in item:
        pk, found, dn = str(item["device"]).partition("/")
        if not (found and pk and dn):
            raise RuleFileError(f"{where}: device {item['device']!r}: write PRODUCTKEY/NAME")
        device = DeviceRef(pk, dn)
    kinds = [key for key in ("topic", "properties", "event", "status") if key in item]
    if len(kinds) != 1:
        raise RuleFileError(
            f"{where}: a message has one of topic (with payload), properties, event, status"
        )
    kind = kinds[0]
    if kind == "topic":
        return Message(
            at=at,
            line=item.line,
            topic=str(item["topic"]),
            payload=_plain(item.get("payload")),
            client_id=str(item.get("clientId", "")),
            device=device,
        )
    if device is None:
        raise RuleFileError(f"{where}: a device's {kind} names its device (PRODUCTKEY/NAME)")
    uplink: Uplink
    if kind == "properties":
        values = _plain(item["properties"])
        if not isinstance(values, dict) or not values:
            raise RuleFileError(f"{where}: properties: {{identifier: value, …}}")
        uplink = PropertyValues(device=device, received=at, values=values, ts=at)
    elif kind == "event":
        params = _plain(item.get("params", {}))
        if not isinstance(params, dict):
            raise RuleFileError(f"{where}: an event's params are a mapping")
        uplink = EventRaised(
            device=device, received=at, event=str(item["event"]), params=params, ts=at
        )
    else:
        status = item["status"]
        if status not in ("online", "offline"):
            raise RuleFileError(f"{where}: status is online or offline")
        uplink = StatusChanged(device=device, received=at, online=status == "online")
    return Message(at=at, line=item.line, uplink=uplink, device=device)


def _time(value: Any, default: int, where: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise RuleFileError(f"{where}: time {value!r}: ms since the epoch or ISO 8601")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise RuleFileError(
                f"{where}: time {value!r}: ms since the epoch or ISO 8601"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _plain(value: Any) -> Any:
    """YAML's values as JSON's (mappings plain, timestamps as ISO text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _line_at(item: _Located, error: str) -> int:
    """The line of the deepest mapping on the path a validation error names (``$.a[0].b``)."""
    found = re.search(r"at `\$([^`]*)`", error)
    line, node = item.line, item
    if found is None:
        return line
    current: Any = node
    for key, index in _PATH_STEP.findall(found.group(1)):
        if key and isinstance(current, dict):
            current = current.get(key)
        elif index and isinstance(current, list) and int(index) < len(current):
            current = current[int(index)]
        else:
            break
        if isinstance(current, _Located):
            line = current.line
    return line


# -- running the cases -----------------------------------------------------------------------


def run_cases(
    rule: FileRule,
    sources: Sequence[RuleSource],
    path: str,
    others: Sequence[RuleSpec] = (),
) -> list[Outcome]:
    """Each case of ``rule`` run on a trial of its own (a fresh rate limit and state);
    ``others``: the file's rules, which a rule action of it is followed into."""
    return [_run_case(rule, case, sources, path, others) for case in rule.cases]


def _run_case(
    rule: FileRule,
    case: Case,
    sources: Sequence[RuleSource],
    path: str,
    others: Sequence[RuleSpec],
) -> Outcome:
    trial = Trial([rule.spec], sources, others=others)
    got: list[dict[str, Any]] = []
    for index, message in enumerate(case.messages):
        heard: list[Heard] = []
        if message.uplink is not None:
            trial.on_uplink(message.uplink, heard)
        else:
            for source in sources:
                if source.translates(message.topic):
                    raise RuleFileError(
                        f"{path}:{message.line}: rules never hear {message.topic!r} raw (the "
                        "platform presents a device's post there): give its properties or event"
                    )
            trial.on_published(
                message.topic,
                message.payload,
                message.at,
                heard,
                client_id=message.client_id,
                device=message.device,
            )
        for _, heard_message, output in heard:
            if output is not None:
                actions = trial.actions(0, output, heard_message)
                got.append({"message": index, "output": output, "actions": actions})
    diff = [] if case.fires is None else _differences(case.fires, got)
    return Outcome(rule=rule.spec.name, case=case.name, line=case.line, passed=not diff, diff=diff)


def _differences(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    if len(expected) != len(got):
        lines.append(f"expected {len(expected)} fire(s), got {len(got)}")
    for number, (want, have) in enumerate(zip(expected, got, strict=False), start=1):
        where = f"fire {number} (line {want['line']})"
        if "message" in want and want["message"] != have["message"]:
            lines.append(f"{where}: expected message {want['message']}, got {have['message']}")
        if "output" in want and not holds(have["output"], want["output"]):
            lines.append(
                f"{where}: output: expected {_j(want['output'])}, got {_j(have['output'])}"
            )
        actions = [
            *want.get("actions", []),
            *({**a, "type": "alarm"} for a in want.get("alarms", [])),
        ]
        for action in actions:
            if not any(holds(done, action) for done in have["actions"]):
                lines.append(f"{where}: no action like {_j(action)}")
    if lines:
        lines.append("expected:")
        lines += [f"  - {_j({k: v for k, v in f.items() if k != 'line'})}" for f in expected]
        lines.append("got:" + ("" if got else " none"))
        lines += [f"  - {_j(fire)}" for fire in got]
    return lines


def holds(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds ``expected``: equal, or for mappings every key expected there
    and holding its value (a partial match, at every depth)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and holds(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(holds(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(actual == expected)


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- export ------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """YAML out: text of several lines as a block (a rule's SQL reads as written)."""


def _text(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(specs: Sequence[RuleSpec]) -> str:
    """Rules as a rule file (what ``load`` reads back the same): their spec, defaults left
    out."""
    items = []
    for spec in specs:
        data: dict[str, Any] = msgspec.to_builtins(spec)
        if data.get("errorAction") is None:
            data.pop("errorAction", None)
        if data.get("enabled", True):
            data.pop("enabled", None)
        if not data.get("shadow", False):
            data.pop("shadow", None)
        items.append({key: data[key] for key in RULE_KEYS if key in data})
    text: str = yaml.dump(items, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return text
