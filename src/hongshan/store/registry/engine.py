"""Opening the registry's database and bringing its schema up to date (Alembic, at start).

``sqlite:///path`` (the default, a file in the data directory) or ``postgresql://…`` (psycopg 3;
``pip install 'hongshan[postgres]'``). SQLite runs in WAL mode with foreign keys on and waits up
to five seconds for a lock rather than failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hongshan.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str, *, schema: str | None = None) -> sa.Engine:
    """An engine for ``url``; ``schema`` (PostgreSQL only) puts every table in that schema."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql+"):
        connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
        return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    raise ConfigError(f"registry_url {url!r}: use sqlite:///FILE or postgresql://…")


def migrate(engine: sa.Engine) -> None:
    """Apply every Alembic revision the database does not have yet."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
