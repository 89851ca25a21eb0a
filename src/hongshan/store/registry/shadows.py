"""Device shadows in the registry: one JSON document per device, written in the background
after every change (the registry thread keeps their order) and read back whole at start."""

from __future__ import annotations

import msgspec
import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, DeviceKey, DeviceRecord, now_ms
from hongshan.twin.shadow import Shadow


class ShadowTable:
    def __init__(self, db: Database, devices: dict[DeviceKey, DeviceRecord]) -> None:
        self._db = db
        self._devices = devices

    async def load(self) -> dict[DeviceKey, Shadow]:
        def query() -> dict[DeviceKey, Shadow]:
            d, sh = t.devices, t.shadows
            select = sa.select(d.c.product_key, d.c.device_name, sh.c.document).join(
                sh, sh.c.device_id == d.c.id
            )
            with self._db.engine.connect() as db:
                return {
                    (row.product_key, row.device_name): msgspec.json.decode(
                        row.document, type=Shadow
                    )
                    for row in db.execute(select)
                }

        return await self._db.run(query)

    def save(self, product_key: str, device_name: str, shadow: Shadow) -> None:
        """Queue the write (the registry thread keeps the order); a failure is logged."""
        auth = self._devices.get((product_key, device_name))
        if auth is None:  # deleted meanwhile
            return
        document = msgspec.json.encode(shadow).decode()

        def write() -> None:
            sh = t.shadows
            with self._db.engine.begin() as db:
                db.execute(sh.delete().where(sh.c.device_id == auth.id))
                db.execute(
                    sh.insert().values(
                        device_id=auth.id,
                        document=document,
                        version=shadow.version,
                        updated_at=now_ms(),
                    )
                )

        self._db.in_background(write)
