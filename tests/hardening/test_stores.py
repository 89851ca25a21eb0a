"""Issue 12's hardening battery, the stores: what they hold for devices that went quiet, what
they keep of a write that failed, and what a start costs on a long history."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from broker_peers import TIMEOUT
from disks import fill
from history_places import HistoryPlace
from hongshan.broker.message import Message
from hongshan.errors import StoreUnavailable
from hongshan.identity.secret_box import SecretBox
from hongshan.store.history.model import LogKind
from hongshan.store.history.sqlite import LAST_STATUS
from hongshan.store.history.taken import KEEP_SECONDS, PER_DEVICE, TakenKeys
from hongshan.store.registry.store import SQLRegistry
from hongshan.store.sqlite.broker_state import SQLiteBrokerState
from hongshan.twin.desired import DesiredValue
from hongshan.twin.shadow import Shadow


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


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait, on the loop, for ``condition`` to hold (a store's state nobody is told of)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not true within {TIMEOUT} s"
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_registry_writes_failed_on_a_full_disk_are_kept_and_written_with_no_traffic(
    small_disk: Path,
) -> None:
    """Issue 12 case 15 (review, finding 7): a latest-value, shadow or desired write that failed
    on a full disk was lost, and the registry's problem (health's 503) stayed until some later
    write succeeded: in a quiet hour, for the hour. Now each is kept and written again about a
    second later, traffic or not."""
    url = f"sqlite:///{small_disk / 'registry.db'}"
    box = SecretBox(secrets.token_bytes(32))
    registry = await SQLRegistry.open(url, box)
    pk = (await registry.create_product("Streetlight")).product_key
    await registry.create_device(pk, "lamp-1")
    lamp = (pk, "lamp-1")
    filler = fill(small_disk)
    try:
        registry.properties.save({lamp: {"Light": (1, 1_000), "Mode": ("eco", 1_000)}})
        registry.shadows.save(*lamp, Shadow(reported={"Light": 1}, version=3))
        registry.desired.save(*lamp, {"Light": DesiredValue(0, 2, 2_000)})
        await until(lambda: registry.problem is not None, "the writes failing")
        assert "full" in (registry.problem or "")
    finally:
        filler.unlink()  # room again, and nothing else written
    await until(lambda: registry.problem is None, "the registry writing again, unprompted")
    await registry.close()

    registry = await SQLRegistry.open(url, box)
    try:
        assert (await registry.properties.load())[lamp] == {
            "Light": (1, 1_000),
            "Mode": ("eco", 1_000),
        }
        assert (await registry.shadows.load())[lamp].version == 3
        assert (await registry.desired.load())[lamp] == {"Light": DesiredValue(0, 2, 2_000)}
    finally:
        await registry.close()


@pytest.mark.slow
async def test_broker_state_writes_failed_on_a_full_disk_are_kept_and_written_with_no_traffic(
    small_disk: Path,
) -> None:
    """Issue 12 case 15 (review, finding 7): the broker state's writer rolled a failed batch
    back and dropped it (a session, a retained message, a QoS 2 id accepted and lost), and its
    problem stayed until another batch committed. Now the batch is kept and written again."""
    path = small_disk / "broker.db"
    state = SQLiteBrokerState(path, loop=asyncio.get_running_loop())
    state.load()
    filler = fill(small_disk)
    try:
        state.save_retained(Message("town/notice", b"x" * 4096, 1, True))
        state.save_session("lamp-1", 3600, None)
        state.save_incoming_qos2("lamp-1", 7)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(state.committed(), TIMEOUT)
        assert "full" in (state.problem or "")
    finally:
        filler.unlink()
    await until(lambda: state.problem is None, "the broker state writing again, unprompted")
    await state.close()

    state = SQLiteBrokerState(path, loop=asyncio.get_running_loop())
    try:
        saved = state.load()
        assert [(m.topic, m.payload) for m in saved.retained] == [("town/notice", b"x" * 4096)]
        assert [(s.client_id, s.incoming_qos2) for s in saved.sessions] == [("lamp-1", {7})]
    finally:
        await state.close()
