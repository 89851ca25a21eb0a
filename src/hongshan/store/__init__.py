"""Persistence behind narrow interfaces; ``sqlite/`` is the embedded default."""
