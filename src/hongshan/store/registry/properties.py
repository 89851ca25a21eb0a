"""The latest property values (``twin.properties``) kept in the registry, so that a restart
does not forget what every lamp last said. Written in batches — an upsert per value, one
transaction per batch — and read back whole at start."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, DeviceKey, DeviceRecord

_UPSERT = (
    "INSERT INTO device_properties (device_id, identifier, value, time) "
    "VALUES ({id}, {identifier}, {value}, {time}) "
    "ON CONFLICT (device_id, identifier) DO UPDATE "
    "SET value = excluded.value, time = excluded.time"
)

Values = dict[DeviceKey, dict[str, tuple[Any, int]]]  # device -> identifier -> (value, time)


class PropertyTable:
    def __init__(self, db: Database, devices: dict[DeviceKey, DeviceRecord]) -> None:
        self._db = db
        self._devices = devices

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
        """Queue an upsert of these values (in the background, in order)."""
        rows = []
        for key, changed in values.items():
            record = self._devices.get(key)
            if record is None:  # deleted meanwhile
                continue
            for identifier, (value, at) in changed.items():
                rows.append(
                    {
                        "id": record.id,
                        "identifier": identifier,
                        "value": msgspec.json.encode(value).decode(),
                        "time": at,
                    }
                )
        if not rows:
            return

        def write() -> None:
            with self._db.engine.begin() as db:
                self._db.executemany(db, _UPSERT, rows)

        self._db.in_background(write)
