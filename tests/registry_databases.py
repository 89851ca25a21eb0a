"""Where a test's registry lives (shared by the ``registry_db`` fixture and its users)."""

from __future__ import annotations

import os

POSTGRES_URL = os.environ.get("HONGSHAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class RegistryDatabase:
    """Where a test's registry lives: a SQLite file, or a PostgreSQL schema of its own."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
