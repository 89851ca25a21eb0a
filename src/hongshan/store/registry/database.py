"""The registry's database: its engine, and the one thread every statement runs on.

The event loop never waits on the database: ``run`` hands a function to the thread and awaits
it; ``in_background`` does not await (writes nobody waits for: shadows, latest values), and
``close`` waits for those before it closes. For SQLite that thread is also the only writer,
as in Datasette.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import string
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from hongshan.failure_log import FailureLog
from hongshan.store.registry import schema as t
from hongshan.store.registry.engine import create_engine, migrate
from hongshan.things.directory import DeviceKey
from hongshan.things.model import RegistryError

if TYPE_CHECKING:
    from hongshan.store.registry.outbox import Outbox

log = logging.getLogger("hongshan.registry")

# seconds before background writes that failed for the database are written again, whether
# or not more come (presence changes, latest values, shadows, desired values)
RETRY_AFTER = 1.0

T = TypeVar("T")


def literal_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, text: str) -> Any:
    """``column`` holds ``text``, case-insensitive (a list's ``q``)."""
    return column.ilike("%" + literal_like(text) + "%", escape="\\")


def now_ms() -> int:
    return int(time.time() * 1000)


class Database:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="registry")
        self._writes: set[asyncio.Future[Any]] = set()  # fire-and-forget writes in flight
        # why the last write nobody waits for failed, until one succeeds (for the health
        # endpoint); said once per kind per interval (a full disk fails them all)
        self.problem: str | None = None
        self._failures = FailureLog(log, "registry writes")
        self.outboxes: list[Outbox[Any]] = []  # written once more at close

    @classmethod
    async def open(cls, url: str, *, schema: str | None = None) -> Database:
        """Open the database and bring its schema up to date."""
        database = cls(create_engine(url, schema=schema))
        await database.run(migrate, database.engine)
        return database

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))

    def in_background(
        self, write: Callable[[], None], *, failed: Callable[[], None] | None = None
    ) -> None:
        """Run ``write`` on the thread without waiting; a failure is logged, said by
        ``problem`` until a write succeeds, and ``failed`` is called (on the loop)."""
        future = asyncio.ensure_future(self.run(write))
        self._writes.add(future)
        future.add_done_callback(functools.partial(self._written, failed))

    def _written(self, failed: Callable[[], None] | None, future: asyncio.Future[Any]) -> None:
        self._writes.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self.problem = None
            self._failures.succeeded()
            return
        if isinstance(exc, (sa.exc.SQLAlchemyError, OSError)):  # the database's (a full disk)
            cause = getattr(exc, "orig", None) or exc  # (SQLAlchemy's text adds the statement)
            self.problem = f"registry write failed: {type(cause).__name__}: {cause}"
            self._failures.failed(f"{type(cause).__name__}: {cause}")
        else:  # a fault of ours: its traceback
            self.problem = f"registry write failed: {type(exc).__name__}"
            log.error("registry: a write failed", exc_info=exc)
        if failed is not None:
            failed()

    def executemany(self, db: sa.Connection, sql: str, rows: list[dict[str, Any]]) -> None:
        """``sql`` with ``{name}`` for each parameter, run by the driver's own executemany:
        for writes at the rate devices come and go, where SQLAlchemy's per-row parameter
        handling costs more than the database's work."""
        if not rows:
            return
        names = list(rows[0])
        if self.engine.dialect.paramstyle == "qmark":
            text = sql.format(**dict.fromkeys(names, "?"))
            order = _placeholders(sql)
            db.exec_driver_sql(text, [tuple(row[name] for name in order) for row in rows])
        else:
            text = sql.format(**{name: f"%({name})s" for name in names})
            db.exec_driver_sql(text, rows)

    async def close(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        for outbox in self.outboxes:  # what a failure left waiting gets a last try
            outbox.stop()
            try:
                await self.run(outbox.flush)
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.error("registry: writes lost at stop: %s", exc)
        await self.run(self.engine.dispose)
        self._thread.shutdown(wait=True)


def _placeholders(sql: str) -> list[str]:
    """The ``{name}`` placeholders of ``sql`` in order (qmark parameters are positional)."""
    return [name for _, name, _, _ in string.Formatter().parse(sql) if name]


def row_id_of(db: sa.Connection, key: DeviceKey) -> int:
    """The row id of device (pk, dn), on the thread; ``RegistryError`` when there is none."""
    found = db.execute(
        sa.select(t.devices.c.id).where(
            t.devices.c.product_key == key[0], t.devices.c.device_name == key[1]
        )
    ).scalar_one_or_none()
    if found is None:
        raise RegistryError(f"no device {key[1]} in product {key[0]}", "not_found")
    return int(found)
