"""One JSON document per device, beside the registry: the shadow, the desired property values.

Written in the background after every change (the registry thread keeps their order; what a
failed write held is kept and written again: ``Outbox``) and read back whole at start. The
tables share a shape: ``device_id``, ``document``, ``updated_at`` and whatever else a table
keeps of the document to query it by (the shadow's ``version``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec
import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, now_ms
from hongshan.store.registry.outbox import Outbox
from hongshan.things.directory import DeviceKey, DeviceRecord

D = TypeVar("D")


class DeviceDocuments(Generic[D]):
    def __init__(
        self,
        db: Database,
        devices: Mapping[DeviceKey, DeviceRecord],
        table: sa.Table,
        kind: type[D],
        columns: Callable[[D], dict[str, Any]] = lambda _document: {},
    ) -> None:
        self._db = db
        self._devices = devices
        self._table = table
        self._kind = kind
        self._columns = columns
        # device -> its document's row: kept until written (``Outbox``)
        self._outbox: Outbox[DeviceKey] = Outbox(db, self._replace, self._current)

    async def load(self) -> dict[DeviceKey, D]:
        def query() -> dict[DeviceKey, D]:
            d, table = t.devices, self._table
            select = sa.select(d.c.product_key, d.c.device_name, table.c.document).join(
                table, table.c.device_id == d.c.id
            )
            with self._db.engine.connect() as db:
                return {
                    (row.product_key, row.device_name): msgspec.json.decode(
                        row.document, type=self._kind
                    )
                    for row in db.execute(select)
                }

        return await self._db.run(query)

    def save(self, product_key: str, device_name: str, document: D) -> None:
        """Queue the write (kept until written: ``Outbox``)."""
        key = (product_key, device_name)
        record = self._devices.get(key)
        if record is None:  # deleted meanwhile
            return
        values = {
            "device_id": record.id,
            "document": msgspec.json.encode(document).decode(),
            "updated_at": now_ms(),
            **self._columns(document),
        }
        self._outbox.put(key, values)

    def _replace(self, db: sa.Connection, rows: list[dict[str, Any]]) -> None:
        table = self._table
        db.execute(table.delete().where(table.c.device_id.in_([row["device_id"] for row in rows])))
        db.execute(table.insert(), rows)

    def _current(self, key: DeviceKey, row: dict[str, Any]) -> bool:
        """Whether the row's device is still there (not deleted, nor made again) at the write."""
        record = self._devices.get(key)
        return record is not None and record.id == row["device_id"]
