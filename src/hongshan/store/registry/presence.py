"""Presence: devices coming and going, written to the registry in batches.

Connected and disconnected arrive at the rate devices connect. The in-memory record (state,
whether it was ever online) changes at once, by the lifecycle table (``Directory.apply``); the
row follows within ``PRESENCE_FLUSH_DELAY``, coalesced per device, in one transaction per
batch. Anything that reads devices flushes first (``flush`` on the registry thread), so a read
sees every change.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import sqlalchemy as sa

from hongshan.store.registry.database import RETRY_AFTER, Database
from hongshan.things.directory import DeviceKey, DeviceRecord

PRESENCE_FLUSH_DELAY = 0.2  # seconds a presence change may wait to be batched with others

_UPDATE = (
    "UPDATE devices SET state = {state}, last_ip = COALESCE({ip}, last_ip), "
    "last_online_at = COALESCE({at}, last_online_at), "
    "first_online_at = COALESCE(first_online_at, {first}) WHERE id = {id}"
)


class PresenceWriter:
    """Writes the devices' presence rows after the directory changed their records: state,
    last address and times, the first time online. Decides nothing of the lifecycle."""

    def __init__(self, db: Database, devices: Mapping[DeviceKey, DeviceRecord]) -> None:
        self._db = db
        self._devices = devices
        # device -> (its ip, when it last connected in this batch, or None)
        self._pending: dict[DeviceKey, tuple[str, int | None]] = {}
        self._lock = threading.Lock()  # noted on the loop, written on the thread
        self._timer: asyncio.TimerHandle | None = None

    def note(self, key: DeviceKey, ip: str, connected_at: int | None) -> None:
        """The device's record changed (the directory applied a connect from ``ip`` at
        ``connected_at``, or a disconnect: "" and None): its row is written with the next
        batch."""
        with self._lock:
            # A batch keeps the last connect even when a disconnect follows it: a device that
            # woke, posted and slept within one batch was online, and must count as activated.
            if connected_at is None:
                ip, connected_at = self._pending.get(key, ("", None))
            self._pending[key] = (ip, connected_at)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(PRESENCE_FLUSH_DELAY, self._scheduled)

    def _scheduled(self) -> None:
        self._timer = None
        self._db.in_background(self.flush, failed=self._retry)

    def _retry(self) -> None:
        """A flush failed (a full disk): its changes, kept, are written again soon, whether
        or not more come (and health learns when the registry can write again)."""
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(RETRY_AFTER, self._scheduled)

    async def flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._db.run(self.flush)

    def flush(self) -> None:
        """On the registry thread. The in-memory state is already right; this writes it."""
        with self._lock:
            pending, self._pending = self._pending, {}
        rows = []
        for key, (ip, connected_at) in pending.items():
            record = self._devices.get(key)
            if record is None:
                continue
            rows.append(
                {
                    "state": record.state.value,
                    "ip": ip or None,
                    "at": connected_at,
                    "first": connected_at,
                    "id": record.id,
                }
            )
        if not rows:
            return
        try:
            with self._db.engine.begin() as db:
                self._db.executemany(db, _UPDATE, rows)
        except sa.exc.SQLAlchemyError:
            # kept for the next flush (a full disk, a database gone): newer changes win
            with self._lock:
                for key, change in pending.items():
                    self._pending.setdefault(key, change)
            raise
