"""SQLite stores: one file per store, every write through one writer (a thread, or for the
history a process: ``process_writer``)."""
