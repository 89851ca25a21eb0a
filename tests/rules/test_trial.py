"""The parts of a rule tried before it acts, without a server: what an action would do, said
for any type of action (alarms come from another branch: any tagged settings describe
themselves); partial matching; a rule file dumped and loaded back the same; a Trial's rate
limit on the messages' own clock."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hongshan.messages import DeviceRef, PropertyValues
from hongshan.rules.definition import (
    ForwardAction,
    RepublishAction,
    RuleSpec,
    SetAction,
    WebhookAction,
    action_problem,
)
from hongshan.services.rules.described import describe
from hongshan.services.rules.engine import MAX_DEPTH
from hongshan.services.rules.files import RuleFileError, dump, holds, load
from hongshan.services.rules.sources import PlatformStreams
from hongshan.services.rules.trial import Heard, Trial


class AlarmLike(msgspec.Struct, frozen=True, kw_only=True, tag="alarm", tag_field="type"):
    severity: str
    name: str


def test_each_action_says_what_it_would_do() -> None:
    output = {"lamp": "lamp-1", "b": 80}
    republish = describe(RepublishAction(topic="town/${lamp}", qos=1), output)
    assert republish == {"type": "republish", "topic": "town/lamp-1", "qos": 1, "payload": output}
    missing = describe(RepublishAction(topic="town/${nobody}"), output)
    assert "no value there" in missing["error"]
    webhook = describe(WebhookAction(url="https://ops.example/h"), output)
    assert (webhook["url"], webhook["body"]) == ("https://ops.example/h", output)
    assert describe(SetAction(product_key="a1", device_name="d"), output)["values"] == output
    alarm = describe(AlarmLike(severity="major", name="hot"), output)
    assert alarm == {"type": "alarm", "severity": "major", "name": "hot", "output": output}


@pytest.mark.parametrize(
    ("actual", "expected", "holding"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"z": None}, False),
        ({"a": [1, 2]}, {"a": [1]}, False),
        ({"a": True}, {"a": 1}, False),  # (a boolean is no number)
        ({"a": 1.0}, {"a": 1}, True),
        ({"type": "alarm", "severity": "major"}, {"type": "alarm"}, True),
    ],
)
def test_an_expectation_holds_partially(actual: Any, expected: Any, holding: bool) -> None:
    assert holds(actual, expected) is holding


def test_a_dumped_rule_file_loads_back_the_same() -> None:
    specs = [
        RuleSpec(
            name="two lines",
            sql='SELECT *\nFROM "town/in"\n',
            actions=[WebhookAction(url="https://ops.example/h", retries=1)],
            error_action=RepublishAction(topic="town/errors"),
            max_per_second=2.5,
            shadow=True,
            enabled=False,
        ),
        RuleSpec(name="plain", sql='SELECT a FROM "t"'),
    ]
    text = dump(specs)
    assert "sql: |" in text and "shadow: true" in text
    assert [rule.spec for rule in load(text, "x.yaml")] == specs


def test_a_trial_keeps_the_rate_limit_on_the_messages_clock() -> None:
    spec = RuleSpec(
        name="r", sql='SELECT values.v AS v FROM "$things/a1/+/properties"', max_per_second=2
    )
    trial = Trial([spec], [PlatformStreams()])
    heard: list[Heard] = []
    device = DeviceRef("a1", "d")
    for at in (0, 100, 200, 300, 1_300):  # a burst of two, a token every 500 ms
        post = PropertyValues(device=device, received=at, values={"v": at}, ts=at)
        trial.on_uplink(post, heard)
    assert [output for _, _, output in heard] == [{"v": 0}, {"v": 100}, None, None, {"v": 1300}]
    assert trial.rules[0].counters.limited == 2


def test_a_trial_reads_the_devices_tags_it_is_given_raw_and_in_a_rule_it_feeds() -> None:
    tags = {("a1", "d"): {"kind": "led", "district": "north"}}
    on = RuleSpec(
        name="on",
        sql="SELECT attribute('district') AS d FROM \"$things/a1/+/properties\" "
        "WHERE attribute('kind') = 'led'",
        actions=[ForwardAction(rule="next")],
    )
    fed = RuleSpec(name="next", sql="SELECT d, attribute('kind') AS k FROM \"x\"")
    trial = Trial([on], [PlatformStreams()], others=[on, fed], tags=lambda *d: tags.get(d, {}))
    heard: list[Heard] = []
    for name in ("d", "other"):
        post = PropertyValues(device=DeviceRef("a1", name), received=1, values={"v": 1}, ts=1)
        trial.on_uplink(post, heard)
    assert [output for _, _, output in heard] == [{"d": "north"}, None]
    _, message, output = heard[0]
    assert output is not None
    then = trial.actions(0, output, message)[0]["then"]
    assert then["output"] == {"d": "north", "k": "led"}
    raw = RuleSpec(name="raw", sql="SELECT attribute('kind') AS k FROM \"t/#\"")
    trial = Trial([raw], [], tags=lambda *d: tags.get(d, {}))
    heard = []
    trial.on_published("t/1", {}, 1, heard, device=DeviceRef("a1", "d"))
    trial.on_published("t/2", {}, 2, heard)  # (speaking for no device: no tags)
    assert [output for _, _, output in heard] == [{"k": "led"}, {}]


def test_a_rule_action_says_the_message_the_named_rule_would_run_on() -> None:
    output = {"lamp": "lamp-1"}
    assert describe(ForwardAction(rule="bright"), output) == {
        "type": "rule",
        "rule": "bright",
        "topic": "$rules/bright",
        "payload": output,
    }
    assert action_problem(ForwardAction(rule="bright")) is None
    assert (
        action_problem(ForwardAction(rule=" "))
        == "rule: ' ' is no rule's name (1 to 64 characters)"
    )
    assert "no rule's name" in str(action_problem(ForwardAction(rule="x" * 65)))


def test_a_trial_follows_a_rule_action_into_the_rule_it_names() -> None:
    on = RuleSpec(
        name="on",
        sql='SELECT deviceName() AS lamp, values.b AS b FROM "$things/a1/+/properties"',
        actions=[ForwardAction(rule="bright"), ForwardAction(rule="elsewhere")],
    )
    bright = RuleSpec(
        name="bright",
        sql="SELECT lamp, topic() AS heard, latest('b') AS twin FROM \"x\" WHERE b > 50",
        actions=[WebhookAction(url="https://ops.example/h")],
    )
    trial = Trial([on], [PlatformStreams()], others=[on, bright])
    device = DeviceRef("a1", "lamp-1")
    said = []
    for at, b in ((0, 80), (1_000, 20)):  # (each said as it fires: latest() is the trial's now)
        heard: list[Heard] = []
        trial.on_uplink(PropertyValues(device=device, received=at, values={"b": b}, ts=at), heard)
        ((_, message, output),) = heard
        assert output is not None
        said.append(trial.actions(0, output, message))
    (followed, elsewhere), (stopped, _) = said
    made = {"lamp": "lamp-1", "heard": "$rules/bright", "twin": 80}
    assert followed["then"] == {
        "output": made,
        "actions": [{**msgspec.to_builtins(bright.actions[0]), "body": made}],
    }
    assert "then" not in elsewhere  # (not a rule of the trial's: only said)
    assert stopped["then"] == {"output": None, "why": "b > 50: false"}
    assert "then" not in trial.actions(0, output)[0]  # (no message: said, not followed)


def test_a_ring_in_a_trial_stops_at_the_depth_limit() -> None:
    ping = RuleSpec(
        name="ping", sql='SELECT n + 1 AS n FROM "t"', actions=[ForwardAction(rule="pong")]
    )
    pong = RuleSpec(
        name="pong", sql='SELECT n + 1 AS n FROM "t"', actions=[ForwardAction(rule="ping")]
    )
    trial = Trial([ping], [], others=[ping, pong])
    heard: list[Heard] = []
    trial.on_published("t", {"n": 0}, 0, heard)
    ((_, message, output),) = heard
    assert output is not None
    then = trial.actions(0, output, message)[0]["then"]
    for _ in range(MAX_DEPTH - 1):
        then = then["actions"][0]["then"]
    assert then["output"] == {"n": MAX_DEPTH + 1}
    assert then["actions"][0]["then"]["why"].startswith("the depth limit")


def test_a_rule_file_refuses_a_rule_handing_its_output_to_itself() -> None:
    text = '- name: a\n  sql: SELECT * FROM "t"\n  actions: [{type: rule, rule: a}]\n'
    with pytest.raises(RuleFileError, match="'a' is this rule"):
        load(text, "x.yaml")
