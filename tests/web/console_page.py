"""A console page under test: what the browser tests hold of it (the fixtures that make one
are in this folder's conftest). A module of its own, not conftest's: ``from conftest import``
finds whichever folder's conftest was imported first."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx
from playwright.sync_api import Page


@dataclass
class Console:
    """The page, the server's origin, its admin token, and what the guard saw."""

    page: Page
    origin: str
    token: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tolerated: list[re.Pattern[str]] = field(default_factory=list)  # errors a test expects

    def leave(self) -> None:
        """Leave the page (its live socket closed as a browser closes it, with a close frame)
        and make one request of the server after it. A server stopped while a socket's close
        is still being handled trips uvicorn: its shutdown sends a close frame on the closing
        connection (websockets' InvalidState, raised in the server's thread); the round trip
        gives the server's loop the turns that finish the close first."""
        self.page.goto("about:blank")
        httpx.get(f"{self.origin}/api/health/live", timeout=10).raise_for_status()

    def open(self, hash_route: str = "") -> Page:
        self.page.goto(f"{self.origin}/{hash_route}")
        return self.page
