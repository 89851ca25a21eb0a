"""Where a test's history lives: a SQLite file, or a PostgreSQL schema of its own (the
``history_place`` fixture gives one of each to every test that takes it)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hongshan.messages import Uplink
from hongshan.pipeline.history import HistoryStage
from hongshan.store.history import postgres_rollups, rollups, sqlite_rollups
from hongshan.store.history.ingest import Ingest
from hongshan.store.history.postgres import PostgresHistory
from hongshan.store.history.retention import Retention
from hongshan.store.history.sqlite import SQLiteHistory
from registry_databases import POSTGRES_URL

ROLLUP_TABLES = ("history_minutes", "history_hours", "history_days")
# every value a SQLite history holds, read from outside it: the points, and those still staged
SQLITE_VALUES = "SELECT value FROM history_points UNION ALL SELECT value FROM history_staged"


class HistoryPlace:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "history.db"
        self.schema = f"h_{uuid.uuid4().hex[:12]}"
        self.url = f"{POSTGRES_URL}?search_path={self.schema}"

    async def create(self) -> None:
        if self.kind == "postgresql":
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f"CREATE SCHEMA {self.schema}")
            await conn.close()

    async def drop(self) -> None:
        if self.kind == "postgresql":
            conn = await asyncpg.connect(POSTGRES_URL)
            await conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
            await conn.close()

    async def open(
        self, zone: str = "UTC", *, retention: Retention | None = None
    ) -> SQLiteHistory | PostgresHistory:
        if self.kind == "sqlite":
            return SQLiteHistory(
                self.path, loop=asyncio.get_running_loop(), time_zone=zone, retention=retention
            )
        return await PostgresHistory.open(self.url, time_zone=zone, retention=retention)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query, read past the store (as another process would)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                return db.execute(sql).fetchall()
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    async def assert_rollups_as_from_scratch(self, zone: str) -> None:
        """The rollups kept (the store closed or killed) are those made again from the points
        alone, but for the last bits of a sum (added in another order)."""
        kept = {
            table: await self.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
            for table in ROLLUP_TABLES
        }
        await self.rollups_from_scratch(zone)
        for table in ROLLUP_TABLES:
            fresh = await self.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
            assert len(kept[table]) == len(fresh), table
            for mine, theirs in zip(kept[table], fresh, strict=True):
                assert mine[:3] == theirs[:3] and mine[4:] == theirs[4:], table
                assert mine[3] == pytest.approx(theirs[3]) or (mine[3] is None) == (
                    theirs[3] is None
                )

    async def rollups_from_scratch(self, zone: str) -> None:
        """Every rollup thrown away and made again from the points alone."""
        wipe = [f"DELETE FROM {table}" for table in (*ROLLUP_TABLES, "history_rolled")]
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                for sql in wipe:
                    db.execute(sql)
                ids = [row[0] for row in db.execute("SELECT id FROM history_series")]
                db.commit()
                sqlite_rollups.recover(db, ids, rollups.TownDays(zone))
            return
        conn = await asyncpg.connect(self.url)
        try:
            for sql in wipe:
                await conn.execute(sql)
            await postgres_rollups.recover(conn, rollups.TownDays(zone))
        finally:
            await conn.close()


async def record(history: Ingest, *uplinks: Uplink) -> None:
    """``uplinks`` kept as the platform's history stage keeps them, and committed."""
    stage = HistoryStage(history)
    for uplink in uplinks:
        stage.on_uplink(uplink)
    await history.committed()


async def crash(history: Ingest) -> None:
    """The store stops as a killed process would: its writer ends with what it was given,
    no rollup pass, no clean close."""
    await history._writer.close()
    for pass_writer in history._pass_writers:
        await pass_writer.close()
    if isinstance(history, PostgresHistory):
        await history._pool.close()
