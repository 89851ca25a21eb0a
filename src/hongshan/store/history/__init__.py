"""Every reading, event and status change the town sends, kept durably and asked about fast
(``model.HistoryStore``; ``sqlite.SQLiteHistory`` is the embedded backend)."""
