"""SQLite stores: one file per deployment, every write through one writer thread."""
