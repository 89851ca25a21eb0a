"""A disk that fills up: the ``small_disk`` fixture (tests/conftest.py) mounts one; ``fill``
takes what is left of it."""

from __future__ import annotations

import contextlib
from pathlib import Path


def fill(disk: Path) -> Path:
    """Every byte left on ``disk`` taken by one file (unlink it to free them)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
    return filler
