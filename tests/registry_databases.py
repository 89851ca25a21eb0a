"""Where a test's registry lives (shared by the ``registry_db`` and ``registry`` fixtures of
tests/conftest.py and their users), and the key it is opened with."""

from __future__ import annotations

import os
import secrets

from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry.store import SQLRegistry

POSTGRES_URL = os.environ.get("HONGSHAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
KEY = secrets.token_bytes(32)  # the registry's secret key (its SecretBox's), one a run


class RegistryDatabase:
    """Where a test's registry lives: a SQLite file, or a PostgreSQL schema of its own."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema

    @property
    def setting(self) -> str:
        """The ``registry_url`` setting of a server on it: PostgreSQL's schema given as libpq
        takes it (the connection's search path)."""
        if self.schema is None:
            return self.url
        return f"{self.url}?options=-csearch_path%3D{self.schema}"

    async def open(self, key: bytes = KEY) -> SQLRegistry:
        """The registry here, opened (and migrated) with ``key``; the caller closes it."""
        return await SQLRegistry.open(self.url, SecretBox(key), schema=self.schema)
