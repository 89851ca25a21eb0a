"""Issue 12's hardening battery, faults: the history's disk filling up and being freed while
devices post, what is kept, what is logged and what health says meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from history_places import HistoryPlace
from hongshan.dialects.alink.dialect import message_key

HOUR = 3_600_000


@pytest.fixture(params=["sqlite", "postgresql"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryPlace]:
    found = HistoryPlace(request.param, tmp_path)
    await found.create()
    try:
        yield found
    finally:
        await found.drop()


async def test_a_resent_burst_is_recognised_whole_while_pending_and_once_committed(
    place: HistoryPlace,
) -> None:
    """Issue 12 case 2, at its root: after a failed commit disconnects a device, paho sends its
    whole queue again at once (300 messages here, not its 20 in flight), and the history
    remembered a device's last 64 keys only, pending or not: a resend of any other, its first
    copy committed or about to be, was taken as new and its values kept twice."""
    history = await place.open()
    device = ("a1Meter", "meter-1")
    topic = f"/sys/{device[0]}/{device[1]}/thing/event/property/post"
    try:
        keys = []
        for seq in range(300):
            payload = json.dumps({"id": str(seq), "params": {"Seq": seq}}).encode()
            keys.append(message_key(topic, str(seq), payload))
            history.add_points(device, [("Seq", int(time.time() * 1000), seq)], arrival=True)
            history.add_taken(device, keys[-1], int(time.time() * 1000))
        pending = [history.was_taken(device, key) for key in keys]  # its outcome not yet known
        assert sum(found is None for found in pending) == 0
        await history.committed()
        await asyncio.gather(*(found for found in pending if found is not None))
        again = [history.was_taken(device, key) for key in keys]  # committed
        assert sum(found is None for found in again) == 0
    finally:
        await history.close()
