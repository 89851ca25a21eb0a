"""The latest property values (``twin.properties``) kept in the registry, so that a restart
does not forget what every lamp last said. Written in batches — an upsert per value, one
transaction per batch, kept and tried again after a failure (``Outbox``) — and read back whole
at start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database
from hongshan.store.registry.outbox import Outbox
from hongshan.things.directory import DeviceKey, DeviceRecord

_UPSERT = (
    "INSERT INTO device_properties (device_id, identifier, value, time) "
    "VALUES ({id}, {identifier}, {value}, {time}) "
    "ON CONFLICT (device_id, identifier) DO UPDATE "
    "SET value = excluded.value, time = excluded.time"
)

Values = dict[DeviceKey, dict[str, tuple[Any, int]]]  # device -> identifier -> (value, time)


class PropertyTable:
    def __init__(self, db: Database, devices: Mapping[DeviceKey, DeviceRecord]) -> None:
        self._db = db
        self._devices = devices
        # (device, identifier) -> its upsert's row: kept until written (``Outbox``)
        self._outbox: Outbox[tuple[DeviceKey, str]] = Outbox(db, self._upsert, self._current)

    async def load(self) -> Values:
        def query() -> Values:
            d, p = t.devices, t.device_properties
            select = sa.select(
                d.c.product_key, d.c.device_name, p.c.identifier, p.c.value, p.c.time
            ).join(p, p.c.device_id == d.c.id)
            values: Values = {}
            with self._db.engine.connect() as db:
                for row in db.execute(select):
                    device = values.setdefault((row.product_key, row.device_name), {})
                    device[row.identifier] = (msgspec.json.decode(row.value), row.time)
            return values

        return await self._db.run(query)

    def save(self, values: Values) -> None:
        """Queue an upsert of these values (in the background, kept until written)."""
        for key, changed in values.items():
            record = self._devices.get(key)
            if record is None:  # deleted meanwhile
                continue
            for identifier, (value, at) in changed.items():
                self._outbox.put(
                    (key, identifier),
                    {
                        "id": record.id,
                        "identifier": identifier,
                        "value": msgspec.json.encode(value).decode(),
                        "time": at,
                    },
                )

    def _upsert(self, db: sa.Connection, rows: list[dict[str, Any]]) -> None:
        self._db.executemany(db, _UPSERT, rows)

    def _current(self, key: tuple[DeviceKey, str], row: dict[str, Any]) -> bool:
        """Whether the row's device is still there (not deleted, nor made again) at the write."""
        record = self._devices.get(key[0])
        return record is not None and record.id == row["id"]
