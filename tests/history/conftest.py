from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from history_places import HistoryPlace


@pytest.fixture(params=["sqlite", "postgresql"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryPlace]:
    found = HistoryPlace(request.param, tmp_path)
    await found.create()
    try:
        yield found
    finally:
        await found.drop()
