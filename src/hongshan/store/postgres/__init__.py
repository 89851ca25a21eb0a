"""PostgreSQL stores: the history on asyncpg, every write through one writer task."""
