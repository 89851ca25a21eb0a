"""The console in Chromium against a real server: signing in as a user (and what their role
hides), the map's markers and clusters, a device's page with a value that changes as a real
MQTT device posts and a service call's reply, an alarm acknowledged by a click, the nav by
keyboard, nothing wider than 1280 by 800.

The other flows sign in with the admin token's header (conftest). Changes arrive over the live
socket (/api/ws); were it down, the console would poll every 10 s, which the waits allow."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from console_page import Console
from playwright.sync_api import Page, expect
from tile_server import tile_server

from alibaba_device import lamps, post
from broker_peers import eventually
from command_devices import Lamp

POLL = 15_000  # ms: the console's 10 s poll, and some


def rest(console: Console) -> httpx.Client:
    headers = {"Authorization": f"Bearer {console.token}"}
    return httpx.Client(base_url=console.origin, headers=headers)


def shows(status: str) -> re.Pattern[str]:
    """A marker's or a cluster's class for ``status`` (a severity or a state)."""
    return re.compile(rf"(^|\s)m-{status}(\s|$)")


def no_overflow(page: Page) -> None:
    wide = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert wide[0] <= wide[1], f"the page is {wide[0]} px wide in a {wide[1]} px window"


def test_the_map_shows_located_devices_coloured_and_clusters_spread(console: Console) -> None:
    with rest(console) as api:
        pk = api.post("/api/products", json={"name": "Lamp"}).json()["productKey"]
        places = {
            "lamp-west": (31.4890, 120.4260),
            "lamp-east": (31.4890, 120.4340),
            "lamp-twin-1": (31.4860, 120.4300),
            "lamp-twin-2": (31.4860, 120.4300),  # the same pole: a cluster until clicked
        }
        for name, (lat, lon) in places.items():
            made = api.post(
                f"/api/products/{pk}/devices",
                json={"deviceName": name, "location": {"lat": lat, "lon": lon}},
            )
            assert made.status_code == 201, made.text
        api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "lamp-east", "type": "lamp out"},
        )
        api.post(
            "/api/alarms",
            json={
                "productKey": pk,
                "deviceName": "lamp-twin-2",
                "type": "door open",
                "severity": "critical",
            },
        )
    page = console.open("#/map")
    expect(page.locator(".marker[title='lamp-west']")).to_have_class(shows("inactive"))
    expect(page.locator(".marker[title='lamp-east']")).to_have_class(shows("major"))
    cluster = page.locator(".cluster")
    expect(cluster).to_have_count(1)
    expect(cluster).to_have_text("2")
    expect(cluster).to_have_class(shows("critical"))  # the worst inside it
    expect(page.locator(".leaflet-overlay-pane path")).not_to_have_count(0)  # the district
    expect(page.locator(".filters .shown")).to_have_text("4 devices")
    no_overflow(page)

    cluster.click()
    expect(page.locator(".marker[title='lamp-twin-2']")).to_have_class(shows("critical"))
    expect(page.locator(".marker[title='lamp-twin-1']")).to_be_visible()

    with rest(console) as api:  # a change while the map is open: that marker, in place
        api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "lamp-west", "type": "dim", "severity": "minor"},
        )
    west = page.locator(".marker[title='lamp-west']")
    expect(west).to_have_class(shows("minor"), timeout=POLL)  # live (or the poll)
    expect(page.locator(".marker[title='lamp-twin-1']")).to_be_visible()  # still spread

    page.select_option("select[name=state]", "inactive")
    expect(page.locator(".filters .shown")).to_have_text("4 devices")
    assert "state=inactive" in page.url
    page.reload()  # the operator keeps their place
    expect(page.locator("select[name=state]")).to_have_value("inactive")
    expect(page.locator(".filters .shown")).to_have_text("4 devices")


def test_a_device_page_reads_a_batch_of_values_from_the_live_socket(
    make_server: Any, consoles: Callable[..., Console]
) -> None:
    # values posted within one interval come as one frame: {"type":"batch","items":[…]}
    server = make_server(ws_batch_interval=2.0)
    feed = server.platform.live_feed
    pk, secrets = lamps(server, "lamp-0001")
    lamp = Lamp(server.port, pk, "lamp-0001", secrets["lamp-0001"]).connect()
    try:
        post(lamp.paho, pk, "lamp-0001", {"Brightness": 40})
        page = consoles(server).open(f"#/devices/{pk}/lamp-0001")
        brightness = page.locator("tr[data-property=Brightness] .value")
        expect(brightness).to_have_text("40 %")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        # subscribed (and re-read once after it): from now on only the socket tells the page
        eventually(lambda: feed.messages_sent >= 1, what="the page subscribed")
        expect(brightness).to_have_text("40 %")
        sent = (feed.messages_sent, feed.frames_sent)
        for value in (41, 42, 43):
            post(lamp.paho, pk, "lamp-0001", {"Brightness": value})
        expect(brightness).to_have_text("43 %", timeout=8_000)  # (no poll while live)
        assert feed.messages_sent - sent[0] > feed.frames_sent - sent[1]  # a batch came
    finally:
        lamp.paho.stop()


def test_a_device_page_shows_live_values_and_a_service_s_reply(
    console: Console, server: Any
) -> None:
    pk, secrets = lamps(server, "lamp-0001")
    lamp = Lamp(server.port, pk, "lamp-0001", secrets["lamp-0001"]).connect()
    try:
        post(lamp.paho, pk, "lamp-0001", {"Brightness": 40})
        page = console.open(f"#/devices/{pk}/lamp-0001")
        brightness = page.locator("tr[data-property=Brightness] .value")
        expect(brightness).to_have_text("40 %")
        expect(page.locator(".device-head .state")).to_have_text("online")
        post(lamp.paho, pk, "lamp-0001", {"Brightness": 75})
        expect(brightness).to_have_text("75 %", timeout=POLL)  # live (or the poll)

        reboot = page.locator("form[data-service=Reboot]")
        reboot.get_by_role("button", name="Call").click()
        expect(reboot.locator("output")).to_have_text("replied · code 200 · {}")
        setter = page.locator("form[data-service=set]")
        setter.locator("input[name=Brightness]").fill("20")
        setter.get_by_role("button", name="Set").click()
        expect(setter.locator("output")).to_contain_text("replied · code 200")
        assert lamp.received.get(timeout=5)["method"] == "thing.service.Reboot"
        expect(page.locator("#commands tbody tr")).to_have_count(2)
        expect(page.locator("#history .chart canvas")).to_have_count(1)
        no_overflow(page)
    finally:
        lamp.paho.stop()


def test_an_alarm_raised_appears_and_is_acknowledged_by_a_click(console: Console) -> None:
    with rest(console) as api:
        pk = api.post("/api/products", json={"name": "Oximeter"}).json()["productKey"]
        api.post(f"/api/products/{pk}/devices", json={"deviceName": "oxi-0001"})
        page = console.open("#/alarms")
        expect(page.locator("ol.alarms")).to_be_attached()
        raised = api.post(
            "/api/alarms",
            json={
                "productKey": pk,
                "deviceName": "oxi-0001",
                "type": "SpO2 low",
                "severity": "critical",
            },
        ).json()
    alarm = page.locator(f"li.alarm[data-alarm='{raised['id']}']")
    expect(alarm).to_be_visible(timeout=POLL)  # live (or the poll)
    expect(alarm).to_have_attribute("data-status", "ACTIVE_UNACK")
    banner = page.locator("#banner")
    expect(banner).to_be_visible(timeout=POLL)
    expect(banner).to_contain_text("Critical: SpO2 low on oxi-0001")
    alarm.get_by_role("button", name="Acknowledge").click()
    expect(alarm).to_have_attribute("data-status", "ACTIVE_ACK")
    alarm.get_by_role("textbox", name="Note text").fill("nurse on the way")
    alarm.get_by_role("button", name="Note").click()
    expect(alarm.locator("details summary")).to_have_text("1 note(s)")
    with rest(console) as api:
        kept = api.get(f"/api/alarms/{raised['id']}").json()
    assert kept["status"] == "ACTIVE_ACK" and kept["notes"][0]["text"] == "nurse on the way"
    no_overflow(page)


def test_the_nav_is_reached_with_tab_and_every_view_fits(console: Console) -> None:
    page = console.open("#/devices")
    expect(page.locator("header.bar")).to_be_visible()
    reached = []
    for _ in range(6):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.textContent.trim()"))
    assert "Map" in reached and "Devices" in reached
    assert any(text.startswith("Alarms") for text in reached)
    page.keyboard.press("Shift+Tab")
    while page.evaluate("() => document.activeElement.textContent.trim()") != "Alarms":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{console.origin}/#/alarms")
    for view in ("#/map", "#/devices", "#/alarms"):
        page = console.open(view)
        expect(page.locator("main#view > *").first).to_be_visible()
        no_overflow(page)


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024)])
def test_a_tablet_sees_the_map_and_the_nav(console: Console, size: tuple[int, int]) -> None:
    console.page.set_viewport_size({"width": size[0], "height": size[1]})
    page = console.open("#/map")
    expect(page.locator(".leaflet-container")).to_be_visible()
    expect(page.get_by_role("link", name="Alarms")).to_be_visible()
    no_overflow(page)


def test_a_viewer_signs_in_where_they_were_going_and_sees_no_controls(
    stranger: Console,
) -> None:
    with rest(stranger) as api:
        made = api.post(
            "/api/users", json={"name": "nurse-li", "password": "correct horse 7", "role": "viewer"}
        )
        assert made.status_code == 201, made.text
        pk = api.post("/api/products", json={"name": "Oximeter"}).json()["productKey"]
        api.post(f"/api/products/{pk}/devices", json={"deviceName": "oxi-0002"})
        api.post(
            "/api/alarms",
            json={"productKey": pk, "deviceName": "oxi-0002", "type": "SpO2 low"},
        )
    # (the browser logs the first read's 401, the wrong password's, and the 404 of the
    # thing model of a product that has none: a device page without forms)
    stranger.tolerated.append(re.compile(r"Failed to load resource: .* (401|404)"))
    page = stranger.open("#/alarms?status=UNACK")
    name = page.get_by_role("textbox", name="Name")
    expect(name).to_be_focused()
    assert "#/login?next=" in page.url
    expect(page.locator("header.bar")).to_be_hidden()
    name.fill("nurse-li")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".login .error")).to_have_text("Wrong name or password.")
    page.get_by_label("Password").fill("correct horse 7")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{stranger.origin}/#/alarms?status=UNACK")
    expect(page.locator("#who")).to_have_text("nurse-li \u00b7 viewer")
    alarm = page.locator("li.alarm")
    expect(alarm).to_have_count(1)
    expect(alarm.get_by_role("button")).to_have_count(0)  # (a viewer acknowledges nothing)
    page.get_by_role("link", name="oxi-0002").click()
    expect(page.locator(".device-head h1")).to_have_text("oxi-0002")
    expect(page.locator(".device-head button")).to_have_count(0)  # (nor disables)
    no_overflow(page)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("textbox", name="Name")).to_be_visible()
    page.reload()  # the session's cookies are gone with it
    expect(page.get_by_role("textbox", name="Name")).to_be_visible()


def test_the_map_draws_a_tile_servers_tiles(make_server: Any, consoles: Any) -> None:
    with tile_server() as tiles:
        server = make_server(map_tile_url=tiles.origin + "/xyz/{z}/{x}/{y}.png")
        page = consoles(server, also=(tiles.origin,)).open("#/map")
        tile = page.locator(f".leaflet-tile[src^='{tiles.origin}/xyz/16/']").first
        expect(tile).to_be_visible()
        expect(page.locator(".leaflet-overlay-pane path")).to_have_count(0)  # no district
        assert page.evaluate("(img) => img.naturalWidth", tile.element_handle()) == 256
        page.goto("about:blank")  # (no tile asked of a tile server gone)


def test_the_map_draws_a_pmtiles_archive(make_server: Any, consoles: Any) -> None:
    with tile_server() as tiles:
        server = make_server(map_tile_url=tiles.origin + "/town.pmtiles", map_zoom=0)
        page = consoles(server, also=(tiles.origin,)).open("#/map")
        tile = page.locator(".leaflet-tile[src^='blob:']").first  # read by range requests
        expect(tile).to_be_visible()
        assert page.evaluate("(img) => img.naturalWidth", tile.element_handle()) == 256
        assert tiles.asked and set(tiles.asked) == {"/town.pmtiles"}
        page.goto("about:blank")  # (no tile asked of a tile server gone)


def test_devices_are_searched_by_name_and_the_search_kept(console: Console) -> None:
    # (a product without a thing model answers its thing-model 404: a page without forms)
    console.tolerated.append(re.compile(r"Failed to load resource: .* 404"))
    with rest(console) as api:
        pk = api.post("/api/products", json={"name": "Meter"}).json()["productKey"]
        names = ("meter-north-1", "meter-north-2", "meter-south-1")
        for name in names:
            api.post(f"/api/products/{pk}/devices", json={"deviceName": name})
    page = console.open("#/devices")
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_role("searchbox", name="Name starts with").fill("meter-north")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(2)
    expect(page.locator(".pages .total")).to_have_text("1\u20132 of 2")
    page.reload()
    expect(rows).to_have_count(2)
    rows.first.get_by_role("link").click()
    expect(page.locator(".device-head h1")).to_have_text("meter-north-1")
    assert page.url.endswith(f"#/devices/{pk}/meter-north-1")
