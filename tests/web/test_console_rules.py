"""The console's rules and products in Chromium against a real server: a rule's syntax
error put at its line and column, the rule fixed, saved, enabled and put in shadow mode; a
backtest over the history a real MQTT device posted, drawn on a timeline with its fires
listed; a thing model imported from an Alibaba TSL file and exported the same, an alarm
condition refused then added; a viewer who sees the rules and no control to change them; a
list's page past its end (a stale URL) shown as its last page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from console_page import Console
from playwright.sync_api import expect
from test_console import no_overflow, rest

from alibaba_device import STREETLIGHT, lamps, online, post
from broker_peers import Paho

pytestmark = pytest.mark.browser

REFUSED = re.compile(r"Failed to load resource: .* 400")


def bright(pk: str) -> str:
    return (
        "SELECT deviceName() AS lamp, items.Brightness.value AS b\n"
        f'FROM "/{pk}/+/thing/event/property/post"\n'
        "WHERE items.Brightness.value > 50"
    )


def test_a_syntax_error_is_put_at_its_line_and_column_and_the_fixed_rule_saved(
    console: Console, server: Any
) -> None:
    console.tolerated.append(REFUSED)  # (the check's answer: the error shown)
    pk, _ = lamps(server)
    broken = bright(pk).replace("> 50", "> AND 50")
    with rest(console) as api:
        said = api.post("/api/rules/check", json={"name": "bright", "sql": broken}).json()
    line, column = said["line"], said["column"]
    assert line == 3
    offset = sum(len(text) + 1 for text in broken.split("\n")[: line - 1]) + column - 1

    page = console.open("#/rules")
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name").fill("bright")
    sql = page.get_by_role("textbox", name="SQL")
    sql.fill(broken)
    page.get_by_role("button", name="Check").click()
    problem = page.locator(".sql .problem")
    expect(problem).to_contain_text(f"line {line}, column {column}")
    expect(page.locator(".sql .gutter li.error")).to_have_text(str(line))
    expect(sql).to_be_focused()
    caret = sql.evaluate("area => [area.selectionStart, area.selectionEnd]")
    assert caret == [offset, offset]

    sql.fill(bright(pk))
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"#/rules/\d+$"))
    rule_id = int(page.url.rsplit("/", 1)[1])
    expect(problem).to_be_hidden()
    page.get_by_role("button", name="Enable", exact=True).click()
    expect(page.locator("p.state")).to_contain_text("enabled, live")
    page.get_by_role("button", name="Shadow on").click()
    expect(page.locator("p.state")).to_contain_text("enabled in shadow mode")
    with rest(console) as api:
        kept = api.get(f"/api/rules/{rule_id}").json()
    assert (kept["sql"], kept["enabled"], kept["shadow"]) == (bright(pk), True, True)
    counters = page.locator(".trace-box .counters")
    expect(counters).to_contain_text(re.compile(r"^running · matched 0 · fired 0"))
    page.get_by_role("link", name="Rules", exact=True).first.click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list tbody td").nth(1)).to_have_text("shadow")
    no_overflow(page)


def test_a_backtest_draws_the_history_it_ran_on_and_lists_its_fires(
    console: Console, server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, secrets = lamps(server, "lamp-1")
    lamp = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    for brightness in (10, 80, 30, 90):
        post(lamp, pk, "lamp-1", {"Brightness": brightness})
    with rest(console) as api:
        failing = {"type": "republish", "topic": "town/rule-failed"}
        rule = {"name": "bright", "sql": bright(pk), "enabled": False, "errorAction": failing}
        made = api.post("/api/rules", json=rule)
        assert made.status_code == 201, made.text
    page = console.open(f"#/rules/{made.json()['id']}")
    page.get_by_role("button", name="Run backtest").click()
    fires = page.locator("ol.fires li")
    expect(fires).to_have_count(2)
    expect(fires.first).to_contain_text(f"{pk}/lamp-1")
    expect(fires.first).to_contain_text('"b":80')
    expect(page.locator(".backtest-box .summary")).to_contain_text("2 would-be fire(s)")
    expect(page.locator(".timeline canvas")).to_have_count(1)
    expect(page.locator(".timeline .u-legend")).to_contain_text("would fire")
    no_overflow(page)
    page.get_by_role("button", name="Save").click()  # (what the editor does not show is kept)
    expect(page.locator("#notice")).to_have_text("Saved bright.")
    with rest(console) as api:
        kept = api.get(f"/api/rules/{made.json()['id']}").json()
    assert kept["errorAction"]["topic"] == "town/rule-failed" and not kept["enabled"]


def test_a_thing_model_imported_from_a_file_is_exported_the_same(
    console: Console, server: Any
) -> None:
    console.tolerated.append(re.compile(r"Failed to load resource: .* 404"))  # (no model yet)
    console.tolerated.append(REFUSED)  # (a condition refused: its detail shown)
    with rest(console) as api:
        pk = api.post("/api/products", json={"name": "Streetlight"}).json()["productKey"]
    page = console.open("#/products")
    page.get_by_role("link", name="Streetlight").click()
    expect(page.locator("h1")).to_have_text(f"Streetlight ({pk})")
    page.get_by_label("Import TSL file").set_input_files(str(STREETLIGHT))
    imported = json.loads(STREETLIGHT.read_text())
    kinds = len(imported["properties"]) + len(imported["events"]) + len(imported["services"])
    expect(page.locator("table.features tbody tr")).to_have_count(kinds)
    expect(page.locator("table.features tbody")).to_contain_text("Brightness")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    assert download.value.suggested_filename == f"{pk}.tsl.json"
    assert json.loads(download.value.path().read_text()) == imported

    condition = {
        "type": "Overvoltage",
        "create": [{"severity": "critical", "predicates": [{"property": "Volts", "op": ">"}]}],
    }
    spec = page.get_by_role("textbox", name="Condition (JSON)")
    spec.fill(json.dumps(condition))
    page.get_by_role("button", name="Save condition").click()
    expect(page.locator(".conditions .problem")).to_contain_text("give a value or a tag")
    condition["create"][0]["predicates"] = [{"property": "Voltage", "op": ">", "value": 260}]
    spec.fill(json.dumps(condition))
    page.get_by_role("button", name="Save condition").click()
    listed = page.locator(".conditions tbody tr")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Overvoltage")
    expect(listed).to_contain_text("critical: Voltage > 260")
    expect(page.locator(".conditions .problem")).to_be_hidden()
    no_overflow(page)


def test_a_viewer_reads_the_rules_and_finds_no_control_to_change_them(
    stranger: Console, server: Any
) -> None:
    pk, _ = lamps(server)
    with rest(stranger) as api:
        made = api.post(
            "/api/users", json={"name": "clerk-wu", "password": "correct horse 8", "role": "viewer"}
        )
        assert made.status_code == 201, made.text
        rule = api.post("/api/rules", json={"name": "bright", "sql": bright(pk)}).json()
    stranger.tolerated.append(re.compile(r"Failed to load resource: .* 401"))
    page = stranger.open("#/rules")
    page.get_by_role("textbox", name="Name").fill("clerk-wu")
    page.get_by_label("Password").fill("correct horse 8")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text("clerk-wu \u00b7 viewer")
    expect(page.get_by_role("link", name="Rules")).to_be_visible()
    expect(page.get_by_role("link", name="People")).to_be_hidden()
    expect(page.get_by_role("link", name="New rule")).to_have_count(0)
    page.get_by_role("link", name="bright").click()
    expect(page.locator("h1")).to_have_text("bright")
    expect(page.get_by_role("textbox", name="SQL")).not_to_be_editable()
    expect(page.locator("form.editor button")).to_have_count(0)
    expect(page.locator(".backtest-box form")).to_have_count(0)
    expect(page.locator(".trace-box .counters")).to_contain_text("matched 0")
    assert rule["id"] == int(page.url.rsplit("/", 1)[1])


def test_a_scene_s_refusal_is_shown_and_its_backtest_drawn(
    console: Console, server: Any, paho_client: Callable[..., Paho]
) -> None:
    console.tolerated.append(REFUSED)  # (the refused save: its detail shown)
    pk, secrets = lamps(server, "lamp-1")
    lamp = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    for brightness in (10, 80, 30):
        post(lamp, pk, "lamp-1", {"Brightness": brightness})
    trigger = {
        "type": "threshold",
        "device": {"productKey": pk, "deviceName": "lamp-1"},
        "property": "Brightness",
        "op": ">",
        "value": 50,
        "forSeconds": 0,
    }
    scene = {
        "name": "bright",
        "enabled": False,
        "triggers": [trigger],
        "actions": [{"type": "republish", "topic": "town/bright"}],
    }
    with rest(console) as api:
        made = api.post("/api/scenes", json=scene)
        assert made.status_code == 201, made.text
    page = console.open("#/scenes")
    page.get_by_role("link", name="bright").click()
    spec = page.get_by_role("textbox", name="Scene (JSON)")
    expect(spec).to_have_value(re.compile('"Brightness"'))  # (read from the API)
    written = json.loads(spec.input_value())
    assert written["triggers"][0]["property"] == "Brightness"
    written["triggers"][0]["property"] = "Nope"
    spec.fill(json.dumps(written))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".spec .problem")).to_contain_text("no property 'Nope'")
    written["triggers"][0]["property"] = "Brightness"
    spec.fill(json.dumps(written))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".spec .problem")).to_be_hidden()
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("p.state")).to_contain_text("enabled")

    page.get_by_role("button", name="Run backtest").click()
    runs = page.locator("ol.fires li")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("ran: 1 step(s)")
    expect(page.locator(".timeline canvas")).to_have_count(1)
    no_overflow(page)


def test_the_new_views_are_reached_from_the_nav_by_keyboard(console: Console) -> None:
    page = console.open("#/map")
    expect(page.locator("header.bar")).to_be_visible()
    page.get_by_role("link", name="Map").focus()
    reached = []
    for _ in range(7):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.textContent.trim()"))
        if reached[-1] == "Products":
            break
    assert reached[-3:] == ["Rules", "Scenes", "Products"], reached
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{console.origin}/#/products")
    expect(page.get_by_role("link", name="Products")).to_have_attribute("aria-current", "page")
    for view in ("#/rules", "#/rules/new", "#/scenes", "#/scenes/new", "#/people"):
        page = console.open(view)
        expect(page.locator("main#view h1")).to_be_visible()
        no_overflow(page)


def test_the_rules_scenes_and_products_keep_their_search_and_page_across_a_reload(
    console: Console, server: Any
) -> None:
    pk, _ = lamps(server, "lamp-1")
    trigger = {
        "type": "threshold",
        "device": {"productKey": pk, "deviceName": "lamp-1"},
        "property": "Brightness",
        "op": ">",
        "value": 50,
        "forSeconds": 0,
    }
    with rest(console) as api:
        for n in range(52):  # (past one page of 50)
            made = api.post("/api/products", json={"name": f"meter-{n:02}"})
            assert made.status_code == 201, made.text
        for name in ("bright-north", "bright-south"):
            made = api.post("/api/rules", json={"name": name, "sql": bright(pk)})
            assert made.status_code == 201, made.text
            scene = {"name": name, "enabled": False, "triggers": [trigger], "actions": []}
            made = api.post("/api/scenes", json=scene)
            assert made.status_code == 201, made.text

    page = console.open("#/products")
    total = page.locator(".pages .total")
    rows = page.locator("table.list tbody tr")
    page.get_by_role("searchbox", name="Name has").fill("meter")
    page.keyboard.press("Enter")
    expect(total).to_have_text("1\u201350 of 52")
    page.get_by_role("button", name="Next").click()
    expect(total).to_have_text("51\u201352 of 52")
    page.reload()
    expect(page.get_by_role("searchbox", name="Name has")).to_have_value("meter")
    expect(total).to_have_text("51\u201352 of 52")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("meter-50")

    # a page past the end (a stale URL, products deleted since): the last page that exists,
    # and the URL says so
    page = console.open("#/products?q=meter&offset=100")
    expect(total).to_have_text("51\u201352 of 52")
    expect(rows).to_have_count(2)
    assert page.url.endswith("#/products?q=meter&offset=50")
    with rest(console) as api:
        for product in api.get("/api/products", params={"q": "meter-5"}).json()["items"]:
            assert api.delete(f"/api/products/{product['productKey']}").status_code == 204
    page.reload()
    expect(total).to_have_text("1\u201350 of 50")
    expect(rows).to_have_count(50)
    assert page.url.endswith("#/products?q=meter")
    page = console.open("#/devices?offset=50")
    expect(page.locator(".pages .total")).to_have_text("1\u20131 of 1")
    assert page.url.endswith("#/devices")

    for view in ("#/rules", "#/scenes"):
        page = console.open(view)
        expect(rows).to_have_count(2)
        page.get_by_role("searchbox", name="Name has").fill("north")
        page.keyboard.press("Enter")
        expect(rows).to_have_count(1)
        page.reload()
        expect(page.get_by_role("searchbox", name="Name has")).to_have_value("north")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("bright-north")
        assert page.url.endswith(f"{view}?q=north")
