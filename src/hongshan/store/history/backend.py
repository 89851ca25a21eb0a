"""Which history a deployment keeps: PostgreSQL where ``history_url`` says, else the SQLite file
in the data directory."""

from __future__ import annotations

import asyncio
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING

from hongshan.config import Settings
from hongshan.errors import ConfigError
from hongshan.store.history.retention import Retention
from hongshan.store.history.sqlite import SQLiteHistory

if TYPE_CHECKING:
    from hongshan.store.history.postgres import PostgresHistory


async def open_history(settings: Settings, default_file: Path) -> SQLiteHistory | PostgresHistory:
    """The history, opened (not yet started), with the retention and time zone the settings
    give; ``ConfigError`` for a time zone or a URL that is none."""
    try:
        zoneinfo.ZoneInfo(settings.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time_zone: {settings.time_zone!r} is not a time zone (such as Asia/Shanghai)"
        ) from None
    retention = Retention(
        raw_days=settings.history_raw_days, rollup_days=settings.history_rollup_days
    )
    url = settings.history_url
    if url is None:
        return await asyncio.to_thread(
            SQLiteHistory,
            default_file,
            loop=asyncio.get_running_loop(),
            retention=retention,
            time_zone=settings.time_zone,
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"history_url: expected postgresql://…, got {url!r}")
    try:
        from hongshan.store.history.postgres import PostgresHistory
    except ImportError as exc:  # asyncpg is in the postgres extra
        raise ConfigError(
            f"history_url: {exc}; install hongshan[postgres] for a PostgreSQL history"
        ) from None
    return await PostgresHistory.open(url, retention=retention, time_zone=settings.time_zone)
