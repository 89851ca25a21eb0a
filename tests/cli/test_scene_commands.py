"""``hongshan scene …`` as a user runs it: the installed command against a running server,
with scene files in YAML."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from test_api_commands import as_json, run

from alibaba_device import make_device, make_product
from broker_peers import Paho
from hongshan.things.tsl import ThingModel

STREETLIGHT = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"

SCENE = """\
name: door chime
description: a webhook from the door, a chime now and another later
triggers:
  - type: webhook
  - {type: cron, expr: "0 1 * * *"}
actions:
  - {type: republish, topic: town/chime, qos: 1}
  - {type: delay, seconds: 0.1}
  - {type: republish, topic: town/chime/again, qos: 1}
mode: queued
max: 3
"""


def test_scenes_from_the_command_line(server: Any, paho_client: Any, tmp_path: Path) -> None:
    scene_file = tmp_path / "chime.yaml"
    scene_file.write_text(SCENE)
    created = as_json(server, "scene", "create", "-f", str(scene_file))
    scene_id = str(created["id"])
    assert created["mode"] == "queued" and len(created["token"]) >= 32
    assert "door chime" in run(server, "scene", "list").stdout
    assert as_json(server, "scene", "show", scene_id)["triggers"][1]["expr"] == "0 1 * * *"
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe("town/#", 1) == [1]
    run(server, "scene", "run", scene_id, "--data", '{"who": "postman"}')
    first, second = watcher.take(2)
    assert (first.topic, second.topic) == ("town/chime", "town/chime/again")
    assert json.loads(first.payload) == {"trigger": "manual", "data": {"who": "postman"}}
    trace = run(server, "scene", "trace", scene_id).stdout
    assert "'who': 'postman'" in trace
    exported = run(server, "scene", "export", scene_id).stdout
    assert yaml.safe_load(exported) == {
        **yaml.safe_load(SCENE),
        "enabled": True,
        "conditions": {"all": [], "any": []},
    } | {
        "actions": [
            {"type": "republish", "topic": "town/chime", "qos": 1},
            {"type": "delay", "seconds": 0.1},
            {"type": "republish", "topic": "town/chime/again", "qos": 1},
        ]
    }
    assert as_json(server, "scene", "disable", scene_id)["enabled"] is False
    # an exported file comes back: as a new scene once the name is free, or in place
    exported_file = tmp_path / "exported.yaml"
    run(server, "scene", "export", scene_id, "-o", str(exported_file))
    taken = run(server, "scene", "import", str(exported_file), check=False)
    assert taken.returncode == 1 and "409" in taken.stderr
    replaced = as_json(server, "scene", "import", str(exported_file), "--replace")
    assert replaced["id"] == created["id"] and replaced["enabled"] is False  # (as exported)
    assert "deleted" in run(server, "scene", "delete", scene_id).stdout
    missing = run(server, "scene", "show", scene_id, check=False)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_a_file_that_is_no_scene_is_refused_naming_its_line(server: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntriggers:\n  - {type: cron, expr: [}\n")
    done = run(server, "scene", "create", "-f", str(bad), check=False)
    assert done.returncode == 1 and f"{bad}, line 3: no YAML" in done.stderr
    bad.write_text("name: x\ntriggers:\n  - type: webhook\n  - type: sun\n    event: noon\n")
    done = run(server, "scene", "create", "-f", str(bad), check=False)
    assert done.returncode == 1 and f"{bad}, line 5: " in done.stderr
    assert "$.triggers[1].event" in done.stderr
    bad.write_text(
        "name: x\ntriggers:\n  - type: webhook\nactions:\n  - type: delay\n    seconds: 1\n"
        "  - {type: set, productKey: nope, deviceName: lamp, values: {On: 1}}\n"
    )
    done = run(server, "scene", "create", "-f", str(bad), check=False)
    # (YAML 1.1 reads an unquoted On as true: a key that is no property name)
    assert done.returncode == 1 and f"{bad}, line 7: Expected `str`, got `bool`" in done.stderr
    bad.write_text(bad.read_text().replace("On: 1", "Power: 1"))
    done = run(server, "scene", "create", "-f", str(bad), check=False)
    assert done.returncode == 1
    assert f"{bad}, line 7: 400: action 2 (set): no product nope" in done.stderr


def _readme_scenes() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Scenes") :]
    return section[section.index("```yaml\n") + 8 : section.index("```\n")]


def test_the_readmes_town_lamps_are_created_and_exported_whole(
    make_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = make_server(time_zone="Asia/Shanghai", latitude=30.6, longitude=114.3)  # (Wuhan)
    lamps = ThingModel.from_json(STREETLIGHT.read_text())
    make_product(server, thing_model=lamps, product_key="a1StLight01")
    for name in ("lamp-0001", "lamp-0002"):
        make_device(server, "a1StLight01", name)
    meter = {
        "schema": "https://iotx-tsl.oss-ap-southeast-1.aliyuncs.com/schema.json",
        "profile": {"version": "1.0", "productKey": "a1LuxMeter1"},
        "properties": [
            {
                "identifier": "Illuminance",
                "name": "Illuminance",
                "accessMode": "r",
                "required": False,
                "dataType": {"type": "float", "specs": {"min": "0", "max": "200000"}},
            }
        ],
        "events": [],
        "services": [],
    }
    make_product(
        server, "Lux meter", thing_model=ThingModel.from_json(meter), product_key="a1LuxMeter1"
    )
    make_device(server, "a1LuxMeter1", "lux-north")
    town = tmp_path / "town-lamps.yaml"
    town.write_text(_readme_scenes())
    made = as_json(server, "scene", "create", "-f", str(town))
    assert [scene["name"] for scene in made] == [
        "lamps on at dusk",
        "lamps off at 01:00",
        "lamps on when it is dark",
    ]
    exported = run(server, "scene", "export").stdout
    assert [spec["name"] for spec in yaml.safe_load_all(exported)] == [
        scene["name"] for scene in made
    ]
    again = tmp_path / "again.yaml"
    run(server, "scene", "export", str(made[2]["id"]), "-o", str(again))
    (spec,) = yaml.safe_load_all(again.read_text())
    assert spec["triggers"][0]["forSeconds"] == 300
    assert spec["conditions"]["all"] == [{"type": "timeWindow", "window": "06:00-01:00"}]


def test_a_scene_is_backtested_and_compared_from_the_command_line(
    server: Any, tmp_path: Path
) -> None:
    scene_file = tmp_path / "chime.yaml"
    scene_file.write_text(SCENE)
    scene_id = str(as_json(server, "scene", "create", "-f", str(scene_file))["id"])
    changed = tmp_path / "changed.yaml"
    changed.write_text(SCENE.replace('"0 1 * * *"', '"0 1,2 * * *"'))
    days = ("--from", "2026-12-01T00:00:00Z", "--to", "2026-12-03T00:00:00Z")
    found = as_json(server, "scene", "backtest", scene_id, *days, "--compare", str(changed))
    assert (found["scene"]["ran"], found["against"]["ran"]) == (2, 4)
    assert found["counts"] == {"onlyScene": 0, "onlyAgainst": 2, "same": 2}
    first = found["scene"]["runs"][0]
    assert [step["topic"] for step in first["steps"]] == ["town/chime", "town/chime/again"]
    assert first["steps"][1]["at"] - first["steps"][0]["at"] == 100  # (its delay)
    shown = run(server, "scene", "backtest", scene_id, *days, "--compare", str(changed)).stdout
    assert "would run 2" in shown and "only file" in shown
    assert "webhook trigger cannot be replayed" in shown
    changed.write_text(SCENE.replace('"0 1 * * *"', '"0 25 * * *"'))
    refused = run(
        server, "scene", "backtest", scene_id, *days, "--compare", str(changed), check=False
    )
    assert refused.returncode == 1 and f"{changed}, line 5" in refused.stderr
