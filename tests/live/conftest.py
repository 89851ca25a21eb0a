"""What the live API's tests share: sockets opened for a test and closed after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_client import LiveSockets


@pytest.fixture
def sockets() -> Iterator[LiveSockets]:
    opened = LiveSockets()
    yield opened
    opened.close_all()
