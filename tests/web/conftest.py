"""The console in Debian's Chromium (no browser download): a real server (the ``server``
fixture), a browser context signed in with the admin token's header (``console``) or with
nothing (``stranger``, who signs in through the form), and a guard that fails a test whose
page asked anything of another origin or logged an error. Each test leaves a screenshot in
its ``tmp_path`` (and in ``$HONGSHAN_SCREENSHOTS`` when set)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.chromium import CHROMIUM, launch
from console_page import Console
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Playwright,
    sync_playwright,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == Path(__file__).parent and item.path.name == "test_console.py":
            item.add_marker(pytest.mark.browser)


# (module: Playwright's sync API runs an event loop in this thread while it is open, and the
# asyncio tests of any module collected after this one could not run theirs)
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture
def consoles(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Console]]:
    """``consoles(server, signed_in=True, also=())``: a page on ``server``'s console, signed in
    (the admin token's header on every request) or not; ``also``: origins it may ask besides
    its own (a tile server). Each is checked by the guard and screenshot at the end."""
    opened: list[tuple[Console, BrowserContext]] = []

    def open_console(server: Any, *, signed_in: bool = True, also: tuple[str, ...] = ()) -> Console:
        origin = f"http://127.0.0.1:{server.ports['http']}"
        token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"} if signed_in else {}
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, extra_http_headers=headers
        )
        seen = Console(page=context.new_page(), origin=origin, token=token)
        allowed = tuple(f"{o}/" for o in (origin, *also))
        seen.page.on("request", lambda asked: _foreign(seen, asked.url, allowed))
        seen.page.on("console", lambda message: _console_error(seen, message))
        seen.page.on("pageerror", lambda error: seen.errors.append(f"uncaught: {error}"))
        opened.append((seen, context))
        return seen

    yield open_console
    for n, (seen, context) in enumerate(opened):
        name = re.sub(r"[^\w.-]", "_", request.node.name) + (f"-{n}" if n else "") + ".png"
        try:
            seen.page.screenshot(path=str(tmp_path / name), full_page=True)
            shots = os.environ.get("HONGSHAN_SCREENSHOTS")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                seen.page.screenshot(path=str(Path(shots) / name), full_page=True)
        finally:
            seen.leave()
            context.close()
        assert not seen.foreign, f"the page asked another origin: {seen.foreign}"
        assert not seen.errors, f"the page logged errors: {seen.errors}"


def _foreign(seen: Console, url: str, allowed: tuple[str, ...]) -> None:
    if not url.startswith((*allowed, "data:", "blob:")):
        seen.foreign.append(url)


def _console_error(seen: Console, message: ConsoleMessage) -> None:
    if message.type == "error" and not any(t.search(message.text) for t in seen.tolerated):
        seen.errors.append(message.text)


@pytest.fixture
def console(server: Any, consoles: Callable[..., Console]) -> Console:
    """Signed in (the admin token's header on every request)."""
    return consoles(server)


@pytest.fixture
def stranger(server: Any, consoles: Callable[..., Console]) -> Console:
    """Not signed in: no credentials at all."""
    return consoles(server, signed_in=False)
