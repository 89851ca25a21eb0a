"""Rule files as a user runs them: ``hongshan rule test`` offline (passing and failing cases,
exit codes, errors naming their line), ``rule export`` → ``rule import`` against a running
server (a round trip changes nothing; ``--dry-run`` says what would change), and ``rule
backtest`` over a history seeded through the server's own store."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_api_commands import as_json, run
from test_history_commands import T0, seeded

from installed import HONGSHAN
from thingsboard_device import rest

PM25 = """\
- name: PM2.5 over 75
  sql: >-
    SELECT deviceName() AS station, values.PM25 AS pm25
    FROM "$things/a1Air/+/properties" WHERE values.PM25 > 75
  actions:
    - {type: webhook, url: "https://ops.example/hooks/air"}
  maxPerSecond: 1
  tests:
    - name: a bad hour fires once a second
      messages:
        - {device: a1Air/station-1, properties: {PM25: 80}, time: 2026-12-01T08:00:00Z}
        - {device: a1Air/station-1, properties: {PM25: 90}, time: "2026-12-01T08:00:00.5Z"}
        - {device: a1Air/station-1, properties: {PM25: 95}, time: "2026-12-01T08:00:01.5Z"}
      fires:
        - message: 0
          output: {station: station-1, pm25: 80}
          actions: [{type: webhook, body: {pm25: 80}}]
        - message: 2
          output: {pm25: 95}
    - name: clean air does not
      messages:
        - {device: a1Air/station-1, properties: {PM25: 12}}
      fires: []
"""

ALIBABA = """\
name: lamp on
sql: >-
  SELECT deviceName() AS lamp, items.Brightness.value AS b
  FROM "/a1Lamp/+/thing/event/property/post" WHERE items.LightSwitch.value = 1
actions:
  - {type: republish, topic: "town/lamps/${lamp}"}
  - {type: set, productKey: a1Lamp, deviceName: lamp-2}
tests:
  - name: a post on Alibaba's rule data, and a raw publish heard as it is
    messages:
      - {device: a1Lamp/lamp-1, properties: {LightSwitch: 1, Brightness: 70}}
      - {device: a1Lamp/lamp-1, properties: {LightSwitch: 0, Brightness: 10}}
      - {topic: /a1Lamp/lamp-1/thing/event/property/post, clientId: tester,
         payload: {items: {LightSwitch: {value: 1}, Brightness: {value: 5}}}}
    fires:
      - message: 0
        output: {lamp: lamp-1, b: 70}
        actions:
          - {type: republish, topic: town/lamps/lamp-1}
          - {type: set, deviceName: lamp-2, values: {b: 70}}
      - {message: 2, output: {lamp: lamp-1, b: 5}}
"""


def hongshan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HONGSHAN, *args], capture_output=True, text=True, timeout=60)


def test_the_cases_of_rule_files_pass_offline(tmp_path: Path) -> None:
    (tmp_path / "pm25.yaml").write_text(PM25)
    (tmp_path / "lamps.yaml").write_text(ALIBABA)
    done = hongshan("rule", "test", str(tmp_path / "pm25.yaml"), str(tmp_path / "lamps.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PASS") and "pm25.yaml:9" in lines[0]
    assert "a bad hour fires once a second" in lines[0]
    assert sum(line.startswith("PASS") for line in lines) == 3
    assert lines[-1] == "3 of 3 cases passed"


def test_the_readme_example_passes_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("**Rule files and their tests.**") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n\n```sh")]
    assert example == PM25
    (tmp_path / "pm25.yaml").write_text(example)
    done = hongshan("rule", "test", str(tmp_path / "pm25.yaml"))
    assert done.returncode == 0 and done.stdout.endswith("2 of 2 cases passed\n")


def test_a_failing_case_says_what_differed_and_exits_1(tmp_path: Path) -> None:
    wrong = PM25.replace("output: {pm25: 95}", "output: {pm25: 96}").replace(
        "fires: []", "fires: [{message: 0}]"
    )
    (tmp_path / "pm25.yaml").write_text(wrong)
    done = hongshan("rule", "test", str(tmp_path / "pm25.yaml"))
    assert done.returncode == 1
    out = done.stdout
    assert "FAIL  " in out and "fire 2 (line 18): output: expected" in out
    assert '{"pm25": 96}, got {"pm25": 95, "station": "station-1"}' in out
    assert "expected 1 fire(s), got 0" in out and "got: none" in out
    assert out.splitlines()[-1] == "0 of 2 cases passed"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: x\n  sql: SELECT\n", "line 1, column 7"),
        ("- name: x\n  sql: SELECT * FROM 't'\n  color: red\n", ":1: unknown key 'color'"),
        (
            '- name: x\n  sql: SELECT * FROM "t"\n  actions:\n    - {type: webhook, url: 5}\n',
            ":4: Expected `str`, got `int` - at `$.actions[0].url`",
        ),
        (
            '- name: x\n  sql: SELECT * FROM "t"\n  actions:\n    - {type: webhook, url: ftp:x}\n',
            ":1: webhook: 'ftp:x' is no http:// or https:// URL",
        ),
        ("- name: x\n  sql: [unclosed\n", ":3: not YAML"),
        (
            '- name: x\n  sql: SELECT * FROM "#"\n  tests:\n    - name: c\n      messages:\n'
            "        - {topic: /sys/pk/dn/thing/event/property/post, payload: {}}\n",
            ":6: rules never hear '/sys/pk/dn/thing/event/property/post' raw",
        ),
        (
            '- name: x\n  sql: SELECT * FROM "#"\n  tests:\n    - name: c\n      messages:\n'
            "        - {properties: {a: 1}}\n",
            ":6: a device's properties names its device",
        ),
    ],
)
def test_an_error_in_a_rule_file_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    done = hongshan("rule", "test", str(path))
    assert done.returncode == 1
    assert str(path) in done.stderr and message in done.stderr, done.stderr
    assert "1 file(s) could not be run" in done.stdout


def test_export_then_import_changes_nothing_and_shadows_switch(server: Any, tmp_path: Path) -> None:
    (tmp_path / "pm25.yaml").write_text(PM25)
    pk = server.run(server.platform.registry.create_product("Air")).product_key
    two = (
        f'- name: quiet\n  sql: |\n    SELECT *\n    FROM "$things/{pk}/+/properties"\n'
        "  shadow: true\n  enabled: false\n"
        "  errorAction: {type: republish, topic: town/errors}\n"
        '- name: echo\n  sql: SELECT a FROM "town/in"\n'
        "  actions: [{type: republish, topic: town/out, qos: 1}]\n"
    )
    (tmp_path / "two.yaml").write_text(two)
    created = run(server, "rule", "import", "-f", str(tmp_path / "two.yaml")).stdout
    assert created.splitlines() == ["create  quiet", "create  echo"]
    shown = {r["name"]: r for r in as_json(server, "rule", "list")}
    assert shown["quiet"]["shadow"] and not shown["quiet"]["enabled"]
    assert shown["quiet"]["sql"] == f'SELECT *\nFROM "$things/{pk}/+/properties"\n'
    exported = run(server, "rule", "export").stdout
    (tmp_path / "exported.yaml").write_text(exported)
    again = run(server, "rule", "import", "-f", str(tmp_path / "exported.yaml")).stdout
    assert [line.split()[0] for line in again.splitlines()] == ["unchanged", "unchanged"]
    assert as_json(server, "rule", "list") == list(shown.values())  # (not even updatedAt)
    # one changed: --dry-run says so and changes nothing; then it is updated in place
    echo_id = str(shown["echo"]["id"])
    one = run(server, "rule", "export", echo_id).stdout
    assert one.startswith("- name: echo\n") and "quiet" not in one
    (tmp_path / "one.yaml").write_text(one.replace("qos: 1", "qos: 0"))
    dry = run(server, "rule", "import", "-f", str(tmp_path / "one.yaml"), "--dry-run").stdout
    assert dry.strip() == f"would update  echo (rule {echo_id})"
    assert as_json(server, "rule", "show", echo_id)["actions"][0]["qos"] == 1
    run(server, "rule", "import", "-f", str(tmp_path / "one.yaml"))
    assert as_json(server, "rule", "show", echo_id)["actions"][0]["qos"] == 0
    # a shadow rule from the command line, switched live and back
    (tmp_path / "q.sql").write_text('SELECT * FROM "town/q"')
    made = as_json(
        server, "rule", "create", "--name", "q", "-f", str(tmp_path / "q.sql"), "--shadow"
    )
    assert made["shadow"] is True
    assert as_json(server, "rule", "enable", str(made["id"]), "--live")["shadow"] is False
    assert as_json(server, "rule", "enable", str(made["id"]), "--shadow")["shadow"] is True
    # a file with one rule the server refuses changes nothing (echo keeps qos 0, not the
    # file's 1), and says which and why
    refused = (
        one.replace("qos: 0", "qos: 1") + '- name: bad\n  sql: SELECT * FROM "$things/nope/+/x"\n'
    )
    (tmp_path / "refused.yaml").write_text(refused)
    done = run(server, "rule", "import", "-f", str(tmp_path / "refused.yaml"), check=False)
    assert done.returncode == 1 and "nothing imported" in done.stderr
    assert "refused.yaml:" in done.stderr and "bad: 400:" in done.stderr
    assert "product nope, which does not exist" in done.stderr
    assert as_json(server, "rule", "show", echo_id)["actions"][0]["qos"] == 0
    missing = run(server, "rule", "export", "999", check=False)
    assert missing.returncode == 1 and "no rule 999" in missing.stderr


def test_a_backtest_from_the_command_line(server: Any, tmp_path: Path) -> None:
    pk = seeded(server)  # air-1 PM25 10..13, air-2 20..23, a minute apart from T0
    rule = (
        f"name: over 12\nsql: SELECT values.PM25 AS pm25 "
        f'FROM "$things/{pk}/+/properties" WHERE values.PM25 > 12\n'
        "actions: [{type: webhook, url: 'http://127.0.0.1:9/hook'}]\n"
    )
    (tmp_path / "rule.yaml").write_text(rule)
    (tmp_path / "v2.yaml").write_text(rule.replace("> 12", "> 21").replace("over 12", "v2"))
    window = ("--from", "2025-12-01T00:00:00Z", "--to", str(T0 + 10 * 60_000))
    summary = run(server, "rule", "backtest", "-f", str(tmp_path / "rule.yaml"), *window).stdout
    assert "9 messages replayed, 8 property values among them" in summary  # (and an event)
    assert "rule 'over 12': matched 8, would fire 5, not run: where 3, rate limit 0" in summary
    assert "2025-12-01T00:03:00.000Z" in summary and "webhook http://127.0.0.1:9/hook" in summary
    compared = as_json(
        server,
        "rule",
        "backtest",
        "-f",
        str(tmp_path / "rule.yaml"),
        "--against",
        str(tmp_path / "v2.yaml"),
        *window,
    )
    assert compared["counts"] == {"onlyRule": 3, "onlyAgainst": 0, "changed": 0, "same": 2}
    text = run(
        server,
        "rule",
        "backtest",
        "-f",
        str(tmp_path / "rule.yaml"),
        "--against",
        str(tmp_path / "v2.yaml"),
        *window,
    ).stdout
    assert "compared: only 'over 12' 3, only 'v2' 0, different outputs 0, the same 2" in text
    # a stored rule, by its id, over one device's history
    run(server, "rule", "import", "-f", str(tmp_path / "rule.yaml"))
    (stored,) = as_json(server, "rule", "list")
    one = as_json(server, "rule", "backtest", str(stored["id"]), "--device", f"{pk}/air-2", *window)
    assert one["rule"]["fired"] == 4 and one["uplinks"] == 4  # (air-2: 20 to 23)
    both = run(server, "rule", "backtest", str(stored["id"]), "-f", "x.yaml", *window, check=False)
    assert both.returncode == 2 and "one of them" in both.stderr
    bad = run(server, "rule", "backtest", "-f", str(tmp_path / "rule.yaml"),
              "--from", "5000", "--to", "1000", check=False)  # fmt: skip
    assert bad.returncode == 1 and "not before" in bad.stderr
    assert json.loads(json.dumps(compared))["complete"] is True


def test_a_shadow_rules_trace_on_the_command_line(server: Any, paho_client: Any) -> None:
    (Path(server.settings.data_dir) / "q.sql").write_text('SELECT a FROM "town/q"')
    made = as_json(
        server,
        "rule",
        "create",
        "--name",
        "quiet",
        "-f",
        str(Path(server.settings.data_dir) / "q.sql"),
        "--webhook",
        "http://127.0.0.1:9/hook",
        "--shadow",
    )
    client = paho_client(server.port).connect()
    assert client.publish("town/q", json.dumps({"a": 1}), 1) == 0
    trace = run(server, "rule", "trace", str(made["id"])).stdout
    assert "wouldFire" in trace
    assert "would    " in trace and "town/q → {'a': 1}" in trace
    assert "webhook http://127.0.0.1:9/hook" in trace


def test_rules_handing_on_to_rules_go_by_name_through_export_and_import(
    make_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = make_server()
    (tmp_path / "r.sql").write_text('SELECT a FROM "town/r"')
    q = as_json(server, "rule", "create", "--name", "q", "-f", str(tmp_path / "r.sql"))
    # --to-rule takes an id or a name; the rule keeps the name
    p = as_json(
        server, "rule", "create", "--name", "p", "-f", str(tmp_path / "r.sql"),
        "--to-rule", str(q["id"]),
    )  # fmt: skip
    assert p["actions"] == [{"type": "rule", "rule": "q"}]
    body = {
        "name": "q",
        "sql": 'SELECT a FROM "town/r"',
        "actions": [{"type": "rule", "rule": "p"}],
    }
    with rest(server) as api:  # (q hands back to p: a ring)
        assert api.put(f"/api/rules/{q['id']}", json=body).status_code == 200
    made = as_json(
        server, "rule", "create", "--name", "first", "-f", str(tmp_path / "r.sql"),
        "--to-rule", "p",
    )  # fmt: skip
    assert made["actions"] == [{"type": "rule", "rule": "p"}]
    refused = run(
        server, "rule", "create", "--name", "x", "-f", str(tmp_path / "r.sql"),
        "--to-rule", "nobody", check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "no rule named 'nobody'" in refused.stderr
    exported = run(server, "rule", "export").stdout
    assert "type: rule" in exported and "rule: p" in exported
    (tmp_path / "all.yaml").write_text(exported)
    # into another town, empty: each created after the rules it hands on to, the ring's
    # first one made disabled without its action and then changed to what it is
    other = make_server(data_dir=str(tmp_path / "other"))
    done = run(other, "rule", "import", "-f", str(tmp_path / "all.yaml")).stdout
    assert sorted(done.splitlines()) == ["create  first", "create  p", "create  q"]

    def kept(town: Any) -> list[Any]:
        shown = as_json(town, "rule", "list")
        return sorted(
            (
                {k: v for k, v in r.items() if k not in ("id", "createdAt", "updatedAt")}
                for r in shown
            ),
            key=lambda r: r["name"],
        )

    assert kept(other) == kept(server)
    again = run(other, "rule", "import", "-f", str(tmp_path / "all.yaml")).stdout
    assert [line.split()[0] for line in again.splitlines()] == ["unchanged"] * 3


CHAIN = """\
- name: lamp on
  sql: >-
    SELECT deviceName() AS lamp, values.Brightness AS b
    FROM "$things/a1Lamp/+/properties" WHERE values.LightSwitch = 1
  actions:
    - {type: rule, rule: bright}
  tests:
    - name: followed into the rule it hands its output to
      messages:
        - {device: a1Lamp/lamp-1, properties: {LightSwitch: 1, Brightness: 80}}
        - {device: a1Lamp/lamp-1, properties: {LightSwitch: 1, Brightness: 20}}
      fires:
        - message: 0
          actions:
            - type: rule
              rule: bright
              payload: {lamp: lamp-1, b: 80}
              then:
                output: {lamp: lamp-1, heard: $rules/bright}
                actions: [{type: webhook, body: {b: 80}}]
        - message: 1
          actions: [{type: rule, then: {output: null, why: "b > 50: false"}}]
- name: bright
  sql: SELECT lamp, b, topic() AS heard FROM "$rules/bright" WHERE b > 50
  actions:
    - {type: webhook, url: "https://ops.example/hooks/bright"}
"""


def test_a_rule_file_follows_a_rule_action_into_a_rule_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "chain.yaml").write_text(CHAIN)
    done = hongshan("rule", "test", str(tmp_path / "chain.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "1 of 1 cases passed"
    wrong = CHAIN.replace("body: {b: 80}", "body: {b: 81}")
    (tmp_path / "wrong.yaml").write_text(wrong)
    failed = hongshan("rule", "test", str(tmp_path / "wrong.yaml"))
    assert failed.returncode == 1 and "fire 1 (line 13): no action like" in failed.stdout
