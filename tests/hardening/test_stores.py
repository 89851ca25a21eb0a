"""Issue 12's hardening battery, the stores: what they hold for devices that went quiet, what
they keep of a write that failed, and what a start costs on a long history."""

from __future__ import annotations

import asyncio

from history_places import HistoryPlace
from hongshan.store.history.model import LogKind
from hongshan.store.history.sqlite import LAST_STATUS
from hongshan.store.history.taken import KEEP_SECONDS, PER_DEVICE, TakenKeys


class Clock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_quiet_devices_keep_only_their_last_keys() -> None:
    """Issue 12 case 5 (review): a device that sent a QoS 1 burst and went quiet kept every
    key of it for as long as the server ran (100 devices x 5,000 keys: 500,000 held ten minutes
    later, against the documented 64 a device): old keys were only trimmed when the same
    device added another."""
    clock = Clock()
    keys = TakenKeys(asyncio.get_running_loop(), clock)
    devices = [("pk", f"quiet{n}") for n in range(100)]
    for device in devices:  # each a burst, committed
        for i in range(1000):
            keys.add(device, b"%d" % i)
        turn = keys.take_turn()
        assert turn is not None
        keys.settle([], turn, True, None)
    assert keys.held() == 100 * 1000  # (recent: all kept)
    clock.now += KEEP_SECONDS + 1
    # another device's turn, the quiet ones sending nothing
    keys.add(("pk", "busy"), b"now")
    turn = keys.take_turn()
    assert turn is not None
    assert keys.held() == 100 * PER_DEVICE + 1
    for device in devices:  # the last PER_DEVICE of each are still known, the rest are not
        assert keys.was_taken(device, b"%d" % 999) is not None
        assert keys.was_taken(device, b"%d" % (999 - PER_DEVICE + 1)) is not None
        assert keys.was_taken(device, b"%d" % (999 - PER_DEVICE)) is None
        assert keys.was_taken(device, b"0") is None
    keys.close()


async def test_pending_and_resent_keys_outlive_the_trim() -> None:
    """Issue 12 case 5 (review): the global trim keeps what exactly-once needs: keys whose
    commit is not known yet, and keys of a message sent again within ``KEEP_SECONDS``."""
    clock = Clock()
    keys = TakenKeys(asyncio.get_running_loop(), clock)
    waiting, resending = ("pk", "waiting"), ("pk", "resending")
    for i in range(200):
        keys.add(waiting, b"w%d" % i)
    pending = keys.take_turn()  # (its commit never answers in this test)
    assert pending is not None
    for i in range(200):
        keys.add(resending, b"r%d" % i)
    turn = keys.take_turn()
    assert turn is not None
    keys.settle([], turn, True, None)
    clock.now += KEEP_SECONDS / 2
    assert keys.was_taken(resending, b"r0") is not None  # sent again: kept from now
    clock.now += KEEP_SECONDS / 2 + 1
    keys.trim()
    assert keys.held() == 200 + PER_DEVICE
    assert keys.was_taken(waiting, b"w0") is not None
    assert keys.was_taken(resending, b"r0") is not None
    assert keys.was_taken(resending, b"r1") is None
    clock.now += KEEP_SECONDS + 1
    keys.settle([], pending, True, None)  # committed at last: old KEEP_SECONDS from now
    keys.trim()
    assert keys.was_taken(waiting, b"w0") is not None
    clock.now += KEEP_SECONDS + 1
    keys.trim()
    assert keys.held() == 2 * PER_DEVICE
    assert keys.was_taken(waiting, b"w1") is None  # (w0, seen again, is among the last)
    keys.close()


async def test_a_start_finds_each_device_last_status_by_an_index(place: HistoryPlace) -> None:
    """Issue 12 case 6 (review, finding 8): a start read each device's last status by walking
    its log back from the end, past everything it posted since it came online (0.14 s for one
    device with 3 M events after its login, and so on for each). Status entries are indexed
    now, and a history from before the index gets it at its next open."""
    lamp, meter = ("pk", "lamp"), ("pk", "meter")
    history = await place.open()
    history.add_log(lamp, LogKind.STATUS, "online", 1_000, {})
    history.add_log(meter, LogKind.STATUS, "online", 1_000, {})
    history.add_log(meter, LogKind.STATUS, "offline", 2_000, {})
    for ts in range(3_000, 3_500):  # what the lamp posted since
        history.add_log(lamp, LogKind.EVENT, "Tick", ts, {})
    await history.committed()
    await history.close()
    await place.fetch("DROP INDEX IF EXISTS history_log_status")  # as a history from before it was

    history = await place.open()
    try:
        assert await history.last_status() == {lamp: "online", meter: "offline"}
    finally:
        await history.close()
    if place.kind == "sqlite":
        plan = " ".join(str(row) for row in await place.fetch("EXPLAIN QUERY PLAN " + LAST_STATUS))
        assert "history_log_status" in plan
    else:
        found = await place.fetch(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname = 'history_log_status'"
        )
        assert len(found) == 1 and "WHERE (kind = 'status'::text)" in found[0][0]
