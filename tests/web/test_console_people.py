"""The console's People view in Chromium against a real server: an admin adds a user and
changes their role, creates an API key shown once (that works as a key), revokes it, and
finds each change in the audit log, filtered, with its CSV; a non-admin has no People."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from console_page import Console
from playwright.sync_api import expect
from test_console import no_overflow, rest

pytestmark = pytest.mark.browser


def test_an_admin_adds_a_user_and_a_key_shown_once_and_audits_both(
    console: Console, server: Any
) -> None:
    page = console.open("#/people")
    users = page.locator("section.users")
    adding = users.locator("form")
    adding.get_by_label("Name").fill("nurse-li")
    adding.get_by_label("Password").fill("correct horse 7")
    adding.get_by_label("Role").select_option("operator")
    adding.get_by_label("Groups").fill("ward-3, ward-4")
    adding.get_by_role("button", name="Add user").click()
    row = users.locator("tbody tr", has_text="nurse-li")
    expect(row).to_have_count(1)
    expect(row.get_by_label("Role of nurse-li")).to_have_value("operator")
    expect(row.get_by_label("Groups of nurse-li")).to_have_value("ward-3, ward-4")
    row.get_by_label("Role of nurse-li").select_option("viewer")
    expect(page.locator("#notice")).to_have_text("nurse-li changed.")

    keys = page.locator("section.keys")
    making = keys.locator("form")
    making.get_by_label("Name").fill("billing")
    making.get_by_label("Role").select_option("viewer")
    making.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    secret = dialog.get_by_label("The new key").input_value()
    assert secret.startswith("hsk_")
    used = httpx.get(f"{console.origin}/api/rules", headers={"X-API-Key": secret}, timeout=10)
    assert used.status_code == 200, used.text
    dialog.get_by_role("button", name="Copy").click()
    # (the clipboard, or without its permission the key selected for Ctrl+C)
    expect(page.locator("#notice")).to_have_text(re.compile("The key is copied|Press Ctrl"))
    chosen = page.locator("dialog input.secret").evaluate(
        "input => input.value.slice(input.selectionStart, input.selectionEnd)"
    )
    assert chosen == secret
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    assert page.locator("dialog input.secret").input_value() == ""  # (shown once)
    key_row = keys.locator("tbody tr", has_text="billing")
    expect(key_row).not_to_contain_text(secret)
    page.once("dialog", lambda asked: asked.accept())  # (the confirm)
    key_row.get_by_role("button", name="Revoke").click()
    expect(key_row).to_contain_text("revoked")

    audit = page.locator("section.audit")
    expect(audit.locator("tbody")).to_contain_text("POST /api/users")
    expect(audit.locator("tbody")).to_contain_text("POST /api/keys")
    expect(audit.locator("tbody")).to_contain_text("PATCH /api/users/{name}/api/users/nurse-li")
    audit.get_by_label("Action").fill("POST /api/keys")
    audit.get_by_role("button", name="Filter").click()
    expect(audit.locator("tbody tr")).to_have_count(1)
    expect(audit.locator("tbody tr")).to_contain_text("billing")
    href = audit.get_by_role("link", name="CSV").get_attribute("href")
    assert href is not None and "format=csv" in href and "action=POST" in href
    with rest(console) as api:
        csv = api.get(href)
    assert csv.status_code == 200 and "POST /api/keys" in csv.text
    assert "POST /api/users" not in csv.text  # (the filter kept)
    no_overflow(page)


def test_an_operator_has_no_people(stranger: Console) -> None:
    with rest(stranger) as api:
        made = api.post(
            "/api/users",
            json={"name": "op-zhao", "password": "correct horse 9", "role": "operator"},
        )
        assert made.status_code == 201, made.text
    stranger.tolerated.append(re.compile(r"Failed to load resource: .* 401"))
    page = stranger.open("#/people")
    page.get_by_role("textbox", name="Name").fill("op-zhao")
    page.get_by_label("Password").fill("correct horse 9")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text("op-zhao \u00b7 operator")
    expect(page.get_by_role("link", name="Rules")).to_be_visible()
    expect(page.get_by_role("link", name="People")).to_be_hidden()
    expect(page.locator("main")).to_contain_text("Only an admin sees")
    expect(page.locator("section.users")).to_have_count(0)
