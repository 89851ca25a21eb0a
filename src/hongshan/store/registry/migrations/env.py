"""Alembic's environment for the registry: run with the connection ``migrate`` hands it."""

from __future__ import annotations

from alembic import context

from hongshan.store.registry.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
