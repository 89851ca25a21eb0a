"""Debian's Chromium as ``bench.map`` and the console's browser tests (``tests/web``) launch it
(no browser download): where it is and its flags, written once. Here rather than among the
tests' helpers: the benchmark cannot import ``tests`` (a package of that name is installed in
site-packages by a dependency), and pytest puts the checkout's root on its path
(``pythonpath`` in pyproject.toml), so the tests import ``bench.chromium``."""

from __future__ import annotations

from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
# (no sandbox: the tests run as root in containers; the rest keep Chromium from reaching out
# on its own — the console tests fail a page that asks any other origin)
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def launch(driver: Playwright) -> Browser:
    """Chromium, headless, with the flags above."""
    return driver.chromium.launch(executable_path=CHROMIUM, args=list(ARGS))
